#!/usr/bin/env bash
# Light-route throughput when the server has ONE core (the small-device case): the demo and the
# axum anchor pinned to CPU 0, wrk pinned to CPU 1, alternating rounds. Also the system calls the
# demo makes per request under that load (strace -c for 1 s).
#
# Usage: scripts/single_core.sh [ROUNDS]   (default 3)
# Needs wrk and strace, and the anchor: cargo build --release --manifest-path bench/anchors/axum/Cargo.toml
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
port=18191
anchor=bench/anchors/axum/target/release/axum-anchor
cargo build --release --quiet --bin steadyloop

run() {
    STEADYLOOP_LOG=off taskset -c 0 "$@" >/dev/null 2>&1 &
    pid=$!
    sleep 0.4
    taskset -c 1 wrk -t1 -c32 -d4s "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {print $2}'
    kill $pid; wait $pid 2>/dev/null || true
}

echo "| round | steadyloop req/s | axum req/s |"
echo "| --- | --- | --- |"
for round in $(seq 1 "$rounds"); do
    a=$(run target/release/steadyloop --addr 127.0.0.1:$port)
    b=$(run "$anchor" --addr 127.0.0.1:$port)
    echo "| $round | $a | $b |"
done
echo
echo "System calls of the demo while wrk runs (strace -c -f, 1 s):"
echo '```'
STEADYLOOP_LOG=off taskset -c 0 target/release/steadyloop --addr 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
sleep 0.4
taskset -c 1 wrk -t1 -c32 -d3s "http://127.0.0.1:$port/healthz" >/dev/null &
load=$!
sleep 0.5
timeout 1 strace -c -f -p $pid 2>&1 | head -20 || true
wait $load
kill $pid; wait $pid 2>/dev/null || true
echo '```'
