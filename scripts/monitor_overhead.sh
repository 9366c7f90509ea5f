#!/usr/bin/env bash
# What the loop monitor (lag measurement + stall watchdog) costs a busy server, two ways:
#   1. user-space instructions per request, counted by callgrind (repeatable on a noisy machine):
#      the demo serves N keep-alive GET /healthz requests with --loop-monitor true, then false;
#   2. GET /healthz req/s with wrk (server pinned to CPU 0, wrk to CPU 1), alternating rounds.
# And what it costs an idle one: every system call of the idle server for a few seconds (strace).
#
# Usage: scripts/monitor_overhead.sh [REQUESTS] [ROUNDS]   (defaults 5000 and 5)
# Needs valgrind, wrk, strace and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
requests=${1:-5000}
rounds=${2:-5}
port=18190
bin=target/release/steadyloop
cargo build --release --quiet --bin steadyloop


echo "## Instructions per request (callgrind, $requests requests, after 100 warm-up ones)"
echo
echo "| loop monitor | instructions, whole run | per request |"
echo "| --- | --- | --- |"
for monitor in true false; do
    STEADYLOOP_LOG=off valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --addr 127.0.0.1:$port --loop-monitor $monitor >/dev/null 2>/tmp/monitor-vg.$$ &
    pid=$!
    wait_port $port
    healthz_client $port 100
    healthz_client $port "$requests"
    kill -INT $pid; wait $pid || true
    total=$(grep -o 'Collected : [0-9]*' /tmp/monitor-vg.$$ | awk '{print $3}')
    echo "| $monitor | $total | $((total / (requests + 100))) |"
done
rm -f /tmp/monitor-vg.$$
echo

echo "## GET /healthz req/s (wrk -t1 -c32 -d4s; server on CPU 0, wrk on CPU 1)"
echo
echo "| round | monitor on | monitor off |"
echo "| --- | --- | --- |"
for round in $(seq 1 "$rounds"); do
    row="| $round"
    for monitor in true false; do
        STEADYLOOP_LOG=off taskset -c 0 "$bin" --addr 127.0.0.1:$port --loop-monitor $monitor >/dev/null 2>&1 &
        pid=$!
        wait_port $port
        rps=$(taskset -c 1 wrk -t1 -c32 -d4s "http://127.0.0.1:$port/healthz" | awk '/Requests\/sec/ {print $2}')
        kill $pid; wait $pid 2>/dev/null || true
        row="$row | $rps"
    done
    echo "$row |"
done
echo

echo "## System calls of an idle server over 3 s (all threads, after one request)"
echo
STEADYLOOP_LOG=off "$bin" --addr 127.0.0.1:$port >/dev/null 2>&1 &
pid=$!
wait_port $port
healthz_client $port 1
sleep 1.5
timeout 3 strace -f -p $pid -o /tmp/monitor-idle.$$ 2>/dev/null || true
kill $pid; wait $pid 2>/dev/null || true
echo '```'
# Lines from the moment of attaching show the calls each thread was already blocked in.
cat /tmp/monitor-idle.$$
echo '```'
rm -f /tmp/monitor-idle.$$
