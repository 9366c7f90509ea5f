#!/usr/bin/env bash
# The retry storm: with `--queue 16`, 80 keep-alive connections hammer `GET /report` and send
# the next request the moment an answer (mostly 503 + Retry-After) arrives, as a client that
# retries at once would; one connection probes `GET /healthz` closed-loop. Target (issue 14):
# the probe's loaded p99 within 3x its unloaded p99, no socket errors, RSS bounded.
#
# Per run: the probe alone for --probe-secs (unloaded), then the storm for
# --probe-secs + 4 s with the same probe from 2 s in (loaded). Reports medians (min-max) over
# the runs: probe p50/p99 unloaded and loaded, their p99 ratio, storm answers/s, 503s/s, socket
# errors, and the server's peak RSS (sampled every 100 ms from /proc/PID/status).
#
# Usage: scripts/retry_storm.sh [--runs N] [--probe-secs S] [--clients C] [--server-args ARGS]
#                               [--bin PATH]
#   --bin PATH  the steadyloop demo binary to test [target/release/steadyloop, built first]
#   --slice-us US  ask Linux 6.12+'s EEVDF scheduler for a US-microsecond slice on the loop
#                  thread (scripts/set_slice.py; root) [off]
# Needs wrk (apt-get install wrk). Client and server share the machine's cores, unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=3
probe_secs=8
clients=80
server_args="--queue 16"
bin=""
slice_us=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --probe-secs) probe_secs=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --server-args) server_args=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --slice-us) slice_us=$2; shift 2 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d' >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
port=18400
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -z "$bin" ]; then
    echo "Building (release)..." >&2
    cargo build --release --quiet --bin steadyloop
    bin="$target/release/steadyloop"
fi

# Prints wrk's percentile $1 (e.g. 99%) from file $2, in ms.
pct_ms() {
    awk -v p="$1" '$1 == p {
        v = $2
        if (v ~ /us$/) { sub("us", "", v); v /= 1000 }
        else if (v ~ /ms$/) { sub("ms", "", v) }
        else if (v ~ /s$/) { sub("s", "", v); v *= 1000 }
        printf "%.3f", v }' "$2"
}

# Prints the peak VmRSS (MiB) of process $1 until it exits.
rss_peak() {
    local peak=0 now
    while now=$(awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null); do
        [ -n "$now" ] && [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.1
    done
    echo $((peak / 1024))
}

: >"$work/results"
for run in $(seq "$runs"); do
    echo "run $run/$runs" >&2
    port=$((port + 1))
    # shellcheck disable=SC2086
    env STEADYLOOP_LOG=off "$bin" --addr 127.0.0.1:$port $server_args \
        >/dev/null 2>&1 &
    pid=$!
    wait_port $port
    # The loop runs on the demo's main thread, whose id is the process id.
    [ -z "$slice_us" ] || python3 scripts/set_slice.py $pid "$slice_us" >&2
    rss_peak $pid >"$work/rss" &
    sampler=$!
    base="http://127.0.0.1:$port"
    wrk -t1 -c1 -d"${probe_secs}s" --latency "$base/healthz" >"$work/unloaded"
    wrk -t1 -c"$clients" -d"$((probe_secs + 4))s" "$base/report" >"$work/storm" &
    storm=$!
    sleep 2
    wrk -t1 -c1 -d"${probe_secs}s" --latency "$base/healthz" >"$work/loaded"
    wait $storm
    kill $pid
    wait $pid 2>/dev/null || true
    wait $sampler || true
    u99=$(pct_ms 99% "$work/unloaded")
    l99=$(pct_ms 99% "$work/loaded")
    secs=$(awk '/requests in/ {sub(",", "", $4); sub("s", "", $4); print $4}' "$work/storm")
    answers=$(awk '/^Requests\/sec/ {print $2}' "$work/storm")
    shed=$(awk -v s="$secs" '/Non-2xx/ {printf "%.0f", $NF / s} END {if (!NR) print 0}' "$work/storm")
    [ -n "$shed" ] || shed=0
    errors=$(cat "$work/storm" "$work/loaded" | awk '/Socket errors/ {
        for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(",", "", v); e += v } } END {print e + 0}')
    echo "$run $(pct_ms 50% "$work/unloaded") $u99 $(pct_ms 50% "$work/loaded") $l99 \
$(awk -v a="$l99" -v b="$u99" 'BEGIN {printf "%.1f", a / b}') $answers $shed $errors $(cat "$work/rss")" \
        >>"$work/results"
done

# Prints "median (min-max)" of column $1.
summary() {
    awk -v c="$1" '{print $c}' "$work/results" | sort -g |
        awk '{v[NR] = $1} END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%s (%s-%s)", m, v[1], v[NR] }'
}

echo "Retry storm: \`$bin\` \`$server_args\`${slice_us:+, loop slice ${slice_us} µs}, $clients wrk connections on \`/report\`, one closed-loop"
echo "\`/healthz\` probe for ${probe_secs}s; median (min-max) of $runs runs; commit $(git rev-parse --short HEAD)."
echo
echo "| probe p50 unloaded (ms) | p99 unloaded | p50 loaded | p99 loaded | p99 ratio | storm answers/s | 503/s | socket errors | peak RSS (MiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
echo "| $(summary 2) | $(summary 3) | $(summary 4) | $(summary 5) | $(summary 6) | $(summary 7) | $(summary 8) | $(summary 9) | $(summary 10) |"
