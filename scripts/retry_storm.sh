#!/usr/bin/env bash
# The retry storm: with `--queue 16`, 80 keep-alive connections hammer `GET /report` and send
# the next request the moment an answer (mostly 503 + Retry-After) arrives, as a client that
# retries at once would; one connection probes `GET /healthz`. Target (issue 14): the probe's
# loaded p99 within 3x its unloaded p99, no socket errors, RSS bounded.
#
# Two probes, one after the other on the same server, unloaded and then loaded:
# - open-loop (the stall scenario's method, bench's `probe` tool): one connection asks at
#   --rate req/s, as a health check does, and each latency counts from the request's due time,
#   so a stall is counted in full;
# - closed-loop (`wrk -t1 -c1 --latency`): the next request the moment the answer arrives,
#   20-40k req/s, so the probe is itself a load that competes for the CPU with the loop and
#   the pool; wrk's percentiles also add synthetic samples for each slow answer (its
#   coordinated-omission correction), which weighs every stall by its length.
# Per run: both probes unloaded (--probe-secs each), then the storm for 2 + 2 x --probe-secs
# + 1 s with both probes from 2 s in. With --control, a third phase replaces the storm by one
# busy loop per core at the pool workers' nice 10 (no storm, no pool work): what the probes see
# when the cores are merely busy, and the loaded p99 over that phase's is what the storm itself
# adds; then a fourth phase keeps the pool full without a storm (one closed-loop `/report`
# connection per worker and queue slot, so few 503s): what pool work alone does to the probes. Reports medians (min-max) over the runs: probe p50/p99
# unloaded and loaded and their p99 ratios, storm answers/s, 503s/s, the loop thread's CPU
# share while the storm runs alone (0.5-2 s in, before the probes join), socket errors (wrk's and
# the open-loop probe's failed requests), and the server's peak RSS (sampled every 100 ms from
# /proc/PID/status).
#
# Usage: scripts/retry_storm.sh [--runs N] [--probe-secs S] [--rate R] [--clients C]
#                               [--server-args ARGS] [--bin PATH] [--slice-us US] [--loop-nice N]
#                               [--control]
#   --rate R       the open-loop probe's requests per second [1000]
#   --bin PATH     the steadyloop demo binary to test [target/release/steadyloop, built first]
#   --slice-us US  ask Linux 6.12+'s EEVDF scheduler for a US-microsecond slice on the loop
#                  thread (scripts/set_slice.py; root) [off]
#   --loop-nice N  renice the loop thread to N (negative needs root or CAP_SYS_NICE, as
#                  systemd's Nice= gives a service) [off]; pool workers still lower themselves
#                  to nice 10
#   --control      add the busy-cores control phase
# Needs wrk (apt-get install wrk). Client and server share the machine's cores, unpinned.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=3
probe_secs=8
rate=1000
control=""
clients=80
server_args="--queue 16"
# Connections that keep the pool full without a storm (--control): workers + queue slots.
fill=""
bin=""
slice_us=""
loop_nice=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --probe-secs) probe_secs=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --control) control=1; shift ;;
        --loop-nice) loop_nice=$2; shift 2 ;;
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

if [ -z "$fill" ]; then
    queue=$(echo "$server_args" | awk '{for (i = 1; i < NF; i++) if ($i == "--queue") print $(i + 1)}')
    workers=$(echo "$server_args" | awk '{for (i = 1; i < NF; i++) if ($i == "--workers") print $(i + 1)}')
    fill=$((${workers:-$(nproc)} + ${queue:-16}))
fi
echo "Building (release)..." >&2
cargo build --release --quiet -p steadyloop-bench --bin probe
probe="$target/release/probe"
if [ -z "$bin" ]; then
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

# Starts the server on a fresh port; sets $pid and $port.
start_server() {
    port=$((port + 1))
    # shellcheck disable=SC2086
    env STEADYLOOP_LOG=off "$bin" --addr 127.0.0.1:$port $server_args >/dev/null 2>&1 &
    pid=$!
    wait_port $port
    # The loop runs on the demo's main thread, whose id is the process id.
    [ -z "$slice_us" ] || python3 scripts/set_slice.py $pid "$slice_us" >&2
    [ -z "$loop_nice" ] || renice -n "$loop_nice" -p $pid >/dev/null
}

# Runs both probes against the server; $1 names the phase (files $work/$1.open, $work/$1.wrk).
probes() {
    "$probe" --addr "127.0.0.1:$port" --rate "$rate" --secs "$probe_secs" >"$work/$1.open"
    wrk -t1 -c1 -d"${probe_secs}s" --latency "http://127.0.0.1:$port/healthz" >"$work/$1.wrk"
}

# Prints the open-loop probe's field $2 (1 p50, 2 p99, 3 max, 4 errors) of phase $1.
open_field() {
    awk -v f="$2" '{print $f}' "$work/$1.open"
}

# Prints $1 / $2 to one decimal.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a / b}'
}

: >"$work/results"
for run in $(seq "$runs"); do
    echo "run $run/$runs" >&2
    start_server
    rss_peak $pid >"$work/rss" &
    sampler=$!
    probes unloaded
    wrk -t1 -c"$clients" -d"$((2 * probe_secs + 3))s" "http://127.0.0.1:$port/report" \
        >"$work/storm" &
    storm=$!
    # The storm's own cost on the loop, before the probes join: the loop thread's CPU time
    # (schedstat, ns) over 1.5 s, as a share of one core.
    sleep 0.5
    t0=$(awk '{print $1}' "/proc/$pid/task/$pid/schedstat")
    sleep 1.5
    t1=$(awk '{print $1}' "/proc/$pid/task/$pid/schedstat")
    loop_pct=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", (b - a) / 1.5e7}')
    probes loaded
    wait $storm
    kill $pid
    wait $pid 2>/dev/null || true
    wait $sampler || true
    control_open=- control_wrk=- versus_open=- versus_wrk=- fill_open=- fill_wrk=-
    if [ -n "$control" ]; then
        start_server
        hogs=()
        for _ in $(seq "$(nproc)"); do
            nice -n 10 sh -c 'while :; do :; done' &
            hogs+=($!)
        done
        sleep 1
        probes control
        kill "${hogs[@]}" $pid
        wait "${hogs[@]}" $pid 2>/dev/null || true
        control_open=$(open_field control 2)
        control_wrk=$(pct_ms 99% "$work/control.wrk")
        versus_open=$(ratio "$(open_field loaded 2)" "$control_open")
        versus_wrk=$(ratio "$(pct_ms 99% "$work/loaded.wrk")" "$control_wrk")
        # The pool kept full without a storm: one closed-loop connection per worker and per
        # queue slot, each waiting for its answer (few 503s, no retry storm).
        start_server
        wrk -t1 -c"$fill" -d"$((2 * probe_secs + 3))s" "http://127.0.0.1:$port/report" \
            >"$work/fill" &
        filler=$!
        sleep 2
        probes fill
        wait $filler
        kill $pid
        wait $pid 2>/dev/null || true
        fill_open=$(open_field fill 2)
        fill_wrk=$(pct_ms 99% "$work/fill.wrk")
    fi
    u99=$(pct_ms 99% "$work/unloaded.wrk")
    l99=$(pct_ms 99% "$work/loaded.wrk")
    secs=$(awk '/requests in/ {sub(",", "", $4); sub("s", "", $4); print $4}' "$work/storm")
    answers=$(awk '/^Requests\/sec/ {print $2}' "$work/storm")
    shed=$(awk -v s="$secs" '/Non-2xx/ {printf "%.0f", $NF / s} END {if (!NR) print 0}' "$work/storm")
    [ -n "$shed" ] || shed=0
    errors=$(cat "$work/storm" "$work/loaded.wrk" | awk '/Socket errors/ {
        for (i = 3; i <= NF; i += 2) { v = $(i + 1); sub(",", "", v); e += v } } END {print e + 0}')
    errors=$((errors + $(open_field unloaded 4) + $(open_field loaded 4)))
    echo "$run $(open_field unloaded 1) $(open_field unloaded 2) $(open_field loaded 1) \
$(open_field loaded 2) $(ratio "$(open_field loaded 2)" "$(open_field unloaded 2)") \
$(pct_ms 50% "$work/unloaded.wrk") $u99 $(pct_ms 50% "$work/loaded.wrk") $l99 $(ratio "$l99" "$u99") \
$answers $shed $errors $(cat "$work/rss") $control_open $control_wrk $loop_pct $versus_open $versus_wrk $fill_open $fill_wrk" >>"$work/results"
done

# Prints "median (min-max)" of column $1 ("-" when the phase did not run).
summary() {
    if awk -v c="$1" '$c == "-" {found = 1} END {exit !found}' "$work/results"; then
        printf -- "-"
    else
        awk -v c="$1" '{print $c}' "$work/results" | median_spread
    fi
}

echo "Retry storm: \`$bin\` \`$server_args\`${slice_us:+, loop slice ${slice_us} µs}${loop_nice:+, loop at nice $loop_nice}, $clients wrk connections on \`/report\`;"
echo "\`/healthz\` probes for ${probe_secs}s each (open-loop at $rate req/s, then closed-loop \`wrk -c1\`);"
echo "median (min-max) of $runs runs; commit $(git rev-parse --short HEAD), $(uname -r), $(nproc) CPUs."
echo
echo "| probe | p50 unloaded (ms) | p99 unloaded | p50 loaded | p99 loaded | p99 ratio |${control:+ p99, busy cores only | p99 loaded / busy cores | p99, pool full, no storm |}"
echo "| --- | --- | --- | --- | --- | --- |${control:+ --- | --- | --- |}"
echo "| open-loop, $rate req/s | $(summary 2) | $(summary 3) | $(summary 4) | $(summary 5) | $(summary 6) |${control:+ $(summary 16) | $(summary 19) | $(summary 21) |}"
echo "| closed-loop, wrk -c1 | $(summary 7) | $(summary 8) | $(summary 9) | $(summary 10) | $(summary 11) |${control:+ $(summary 17) | $(summary 20) | $(summary 22) |}"
echo
echo "| storm answers/s | 503/s | loop CPU, storm alone (% of a core) | socket errors | peak RSS (MiB) |"
echo "| --- | --- | --- | --- | --- |"
echo "| $(summary 12) | $(summary 13) | $(summary 18) | $(summary 14) | $(summary 15) |"
