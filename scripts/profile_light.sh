#!/usr/bin/env bash
# Where the loop's CPU time goes under light-route load: the demo on CPU 0 under
# `wrk -t1 -c32` on CPU 1, sampled with `perf record` for 5 s, reported by shared object
# (kernel, the binary, libc, vdso).
#
# Usage: scripts/profile_light.sh    Needs wrk and perf (Debian: linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
port=18192
data=$(mktemp)
cargo build --release --quiet --bin steadyloop
STEADYLOOP_LOG=off taskset -c 0 target/release/steadyloop --addr 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
sleep 0.4
taskset -c 1 wrk -t1 -c32 -d8s "http://127.0.0.1:$port/healthz" >/dev/null &
load=$!
sleep 1
perf record -q -F 2000 -p $pid -o "$data" -- sleep 5 2>/dev/null
wait $load
kill $pid; wait $pid 2>/dev/null || true
perf report -i "$data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^#' | grep -v '^$'
rm -f "$data"
