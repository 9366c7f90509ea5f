#!/usr/bin/env bash
# What the RequestId layer costs a light route, layer on and off in one build
# (bench/src/bin/layer_server.rs), three ways:
#   1. user-space instructions per GET /healthz, counted by callgrind (repeatable on a noisy
#      machine): REQUESTS keep-alive requests one after another, after 100 warm-up ones;
#   2. req/s with wrk (server pinned to CPU 0, wrk to CPU 1), alternating rounds, medians;
#   3. server CPU per request over each wrk run (utime + stime from /proc), medians.
#
# Usage: scripts/layer_overhead.sh [ROUNDS] [SECONDS] [REQUESTS]   (defaults 7, 4 and 5000).
# Needs wrk, valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
rounds=${1:-7}
secs=${2:-4}
requests=${3:-5000}
port=18193
bin=target/release/layer_server
cargo build --release --quiet -p steadyloop-bench --bin layer_server
ticks=$(getconf CLK_TCK)



echo "## Instructions per GET /healthz (callgrind, $requests requests after 100 warm-up ones)"
echo
echo "| layer | instructions, whole run | per request |"
echo "| --- | --- | --- |"
declare -A per_request
for layer in on off; do
    vg=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" --addr 127.0.0.1:$port --request-id $layer >/dev/null 2>"$vg" &
    pid=$!
    wait_port $port
    healthz_client $port 100
    healthz_client $port "$requests"
    kill -INT $pid; wait $pid || true
    total=$(grep -o 'Collected : [0-9]*' "$vg" | awk '{print $3}')
    rm -f "$vg"
    per_request[$layer]=$((total / (requests + 100)))
    echo "| $layer | $total | ${per_request[$layer]} |"
done
echo
python3 -c "print(f'instructions per request with the layer: {100 * ${per_request[on]} / ${per_request[off]}:.1f}% of without')"
echo

results=$(mktemp)
echo "## GET /healthz with and without the request-id layer (wrk -t1 -c32 -d${secs}s, $rounds rounds)"
echo
echo "| round | layer | req/s | server CPU µs/request (user + system) |"
echo "| --- | --- | --- | --- |"
for round in $(seq 1 "$rounds"); do
    for layer in on off; do
        taskset -c 0 "$bin" --addr 127.0.0.1:$port --request-id $layer >/dev/null 2>&1 &
        pid=$!
        wait_port $port
        # Warm-up, then the measured run.
        taskset -c 1 wrk -t1 -c32 -d1s "http://127.0.0.1:$port/healthz" >/dev/null
        read -r user0 sys0 < <(cpu_ticks $pid)
        out=$(taskset -c 1 wrk -t1 -c32 -d"${secs}s" "http://127.0.0.1:$port/healthz")
        read -r user1 sys1 < <(cpu_ticks $pid)
        kill -INT $pid; wait $pid 2>/dev/null || true
        rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
        requests=$(echo "$out" | awk '/requests in/ {print $1}')
        read -r us us_user us_sys < <(python3 -c "
f = 1e6 / $ticks / $requests
u, s = ($user1 - $user0) * f, ($sys1 - $sys0) * f
print(f'{u + s:.2f} {u:.2f} {s:.2f}')")
        echo "| $round | $layer | $rps | $us ($us_user + $us_sys) |"
        echo "$layer $rps $us $us_user" >> "$results"
    done
done
echo
python3 - "$results" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {}
for layer in ("on", "off"):
    rps = [float(r[1]) for r in rows if r[0] == layer]
    cpu = [float(r[2]) for r in rows if r[0] == layer]
    user = [float(r[3]) for r in rows if r[0] == layer]
    med[layer] = (statistics.median(rps), statistics.median(cpu), min(rps), max(rps),
                  statistics.median(user))
print("| layer | median req/s (min–max) | median CPU µs/request | of which user |")
print("| --- | --- | --- | --- |")
for layer in ("on", "off"):
    m = med[layer]
    print(f"| {layer} | {m[0]:.0f} ({m[2]:.0f}–{m[3]:.0f}) | {m[1]:.2f} | {m[4]:.2f} |")
print()
print(f"req/s with the layer: {100 * med['on'][0] / med['off'][0]:.1f}% of without; "
      f"CPU per request: {100 * med['on'][1] / med['off'][1]:.1f}%")
PY
rm -f "$results"
