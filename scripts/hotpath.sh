#!/usr/bin/env bash
# The hot path, side by side in one run: system calls, server CPU and req/s per light
# keep-alive request (`GET /healthz` under `wrk -t1 -c32`) for steadyloop's demo and the axum
# anchor on tokio's multi-thread runtime (2 workers) and on its current_thread runtime.
#
# Per run and server: the server starts on CPU 0, wrk runs on CPU 1 (a 1 s warm-up, then the
# measured run); system calls are counted in the kernel with
# `perf stat -e raw_syscalls:sys_enter` on the server's pid (not strace: ptrace slows the server
# and changes its batching), server CPU comes from /proc/PID/stat (user and system ticks), and
# both are divided by the requests wrk completed. Prints one Markdown table of medians with the
# min-max spread over the runs, and the per-syscall breakdown of the median run. The busy share
# of each CPU over the measured run (from /proc/stat, steal counted as busy) says which side was
# the bottleneck: with wrk's CPU near 100%, req/s measures wrk, not the server. When axum-ct
# runs, each server's CPU per request is also given as a ratio to axum-ct's in the same repeat.
#
# The anchor serves `"ok"` with no middleware and is built with opt-level 3, while the demo as
# shipped adds its request-id and gzip layers and is built with opt-level "s" (for size). So
# besides `steadyloop` (the demo as shipped) two variants do the anchor's work:
# `steadyloop-bare` (the same binary, STEADYLOOP_DEMO_LAYERS=off) and `steadyloop-o3` (no layers,
# built with the anchor's opt-level 3 into target/hotpath-o3); and `axum-ct-layers` does the
# demo's work on the anchor (current_thread, tower-http's request-id and gzip layers, `--layers`).
#
# Usage: scripts/hotpath.sh [--runs N] [--secs S] [--conns C] [--only LIST]
#   --runs N     repeats per server [3]
#   --secs S     measured wrk duration per repeat [5]
#   --conns C    wrk connections [32]
#   --pipeline N send N requests per write on each connection (a wrk Lua script), so wrk
#                spends far less CPU per request and req/s can measure the server [1: none]
#   --only LIST  comma-separated subset of:
#                steadyloop,steadyloop-bare,steadyloop-o3,axum-2w,axum-ct,axum-ct-layers [all]
#   --before BIN also run BIN, a steadyloop demo binary built from another commit, as
#                `before` (for before/after figures in one run)
# Needs wrk (apt-get install wrk), perf (Debian: linux-perf) with tracepoint access (root, or
# kernel.perf_event_paranoid <= -1), taskset, and the anchor built:
#   cargo build --release --manifest-path bench/anchors/axum/Cargo.toml
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

runs=3
secs=5
conns=32
pipeline=1
only="steadyloop,steadyloop-bare,steadyloop-o3,axum-2w,axum-ct,axum-ct-layers"
before=""
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        --conns) conns=$2; shift 2 ;;
        --pipeline) pipeline=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --before) before=$2; shift 2 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d' >&2; exit 2 ;;
    esac
done

target="${CARGO_TARGET_DIR:-target}"
[ -z "$before" ] || only="before,$only"
anchor="bench/anchors/axum/target/release/axum-anchor"
port=18300
tick=$(getconf CLK_TCK)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
script=()
if [ "$pipeline" -gt 1 ]; then
    # wrk counts every response, and writes the next batch once the whole batch is answered.
    cat >"$work/pipeline.lua" <<EOF
init = function(args)
    local batch = {}
    for i = 1, $pipeline do batch[i] = wrk.format(nil, "/healthz") end
    req = table.concat(batch)
end
request = function() return req end
EOF
    script=(-s "$work/pipeline.lua")
fi

echo "Building (release)..." >&2
cargo build --release --quiet --bin steadyloop
o3="target/hotpath-o3"
case ",$only," in *,steadyloop-o3,*)
    CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build --release --quiet --bin steadyloop --target-dir "$o3" ;;
esac
case ",$only," in *,axum-*) cargo build --release --quiet --manifest-path bench/anchors/axum/Cargo.toml ;; esac

# The system calls broken out in the detail table (all of them are counted in the total).
detail="recvfrom sendto read write writev epoll_wait epoll_pwait epoll_pwait2 epoll_ctl timerfd_settime futex"

# Prints the command line that starts server $1 on port $2.
server_cmd() {
    case "$1" in
        steadyloop) echo "env STEADYLOOP_LOG=off $target/release/steadyloop --addr 127.0.0.1:$2" ;;
        steadyloop-bare) echo "env STEADYLOOP_LOG=off STEADYLOOP_DEMO_LAYERS=off $target/release/steadyloop --addr 127.0.0.1:$2" ;;
        steadyloop-o3) echo "env STEADYLOOP_LOG=off STEADYLOOP_DEMO_LAYERS=off $o3/release/steadyloop --addr 127.0.0.1:$2" ;;
        before) echo "env STEADYLOOP_LOG=off $before --addr 127.0.0.1:$2" ;;
        axum-2w) echo "$anchor --addr 127.0.0.1:$2 --workers 2" ;;
        axum-ct) echo "$anchor --addr 127.0.0.1:$2 --current-thread" ;;
        axum-ct-layers) echo "$anchor --addr 127.0.0.1:$2 --current-thread --layers" ;;
    esac
}

# Prints "busy total" jiffies of CPU $1 from /proc/stat (busy: all but idle and iowait).
cpu_busy() {
    awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= 9; i++) t += $i
        print t - $5 - $6, t}' /proc/stat
}

# Runs one measurement of server $1; appends "name run reqs rps syscalls us_per_req user_us
# sys_us cpu0_busy% cpu1_busy%" to $work/results and the per-syscall counts to
# $work/detail.$1.$2.
measure() {
    local name=$1 run=$2
    port=$((port + 1))
    # shellcheck disable=SC2046
    taskset -c 0 $(server_cmd "$name" $port) >/dev/null 2>&1 &
    local pid=$!
    wait_port $port
    taskset -c 1 wrk -t1 -c"$conns" "${script[@]}" -d1s "http://127.0.0.1:$port/healthz" >/dev/null
    local events="-e raw_syscalls:sys_enter"
    for s in $detail; do
        if [ -d "/sys/kernel/tracing/events/syscalls/sys_enter_$s" ] ||
            [ -d "/sys/kernel/debug/tracing/events/syscalls/sys_enter_$s" ]; then
            events="$events -e syscalls:sys_enter_$s"
        fi
    done
    local before
    before=$(cpu_ticks $pid)
    # shellcheck disable=SC2086
    perf stat -x, $events -p $pid -o "$work/perf" &
    local perf=$!
    sleep 0.3
    local cpu0 cpu1
    cpu0=$(cpu_busy 0)
    cpu1=$(cpu_busy 1)
    taskset -c 1 wrk -t1 -c"$conns" "${script[@]}" -d"${secs}s" "http://127.0.0.1:$port/healthz" >"$work/wrk"
    cpu0="$cpu0 $(cpu_busy 0)"
    cpu1="$cpu1 $(cpu_busy 1)"
    kill -INT $perf
    wait $perf || true
    local after
    after=$(cpu_ticks $pid)
    kill $pid
    wait $pid 2>/dev/null || true
    local reqs rps total
    reqs=$(awk '/requests in/ {print $1}' "$work/wrk")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$work/wrk")
    total=$(awk -F, '$3 == "raw_syscalls:sys_enter" {print $1}' "$work/perf")
    awk -F, -v r="$reqs" '$3 ~ /^syscalls:sys_enter_/ && $1 > 0 {
        sub("syscalls:sys_enter_", "", $3); printf "%s %.3f\n", $3, $1 / r }' "$work/perf" \
        >"$work/detail.$name.$run"
    echo "$name $run $reqs $rps $(awk -v t="$total" -v r="$reqs" 'BEGIN {printf "%.3f", t / r}') \
$(echo "$before $after" | awk -v r="$reqs" -v k="$tick" '{u = ($3 - $1) / k / r * 1e6
        s = ($4 - $2) / k / r * 1e6; printf "%.2f %.2f %.2f", u + s, u, s}') \
$(echo "$cpu0 $cpu1" | awk '{printf "%.0f %.0f", ($3 - $1) / ($4 - $2) * 100, ($7 - $5) / ($8 - $6) * 100}')" >>"$work/results"
}

# Prints, one per repeat, column $3 of server $2 over the same column of server $1.
ratio_to() {
    awk -v b="$1" -v n="$2" -v c="$3" '$1 == b {base[$2] = $c} $1 == n {mine[$2] = $c}
        END {for (r in mine) if (r in base) printf "%.2f\n", mine[r] / base[r]}' "$work/results"
}

# Prints "median (min-max)" of column $2 for server $1.
summary() {
    awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$work/results" | median_spread
}

: >"$work/results"
# Interleave servers within each repeat so drift in the machine's load hits all alike.
for run in $(seq "$runs"); do
    for name in ${only//,/ }; do
        echo "run $run/$runs: $name" >&2
        measure "$name" "$run"
    done
done

shape=""
[ "$pipeline" -le 1 ] || shape=", $pipeline requests pipelined per write"
echo "Light keep-alive requests, \`wrk -t1 -c$conns -d${secs}s\` on \`GET /healthz\`$shape, server on CPU 0,"
echo "wrk on CPU 1; median (min-max) of $runs runs; commit $(git rev-parse --short HEAD), $(uname -r)."
echo
echo "| server | syscalls / request | server CPU / request (µs) | user (µs) | system (µs) | req/s | CPU 0 (server) busy % | CPU 1 (wrk) busy % |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for name in ${only//,/ }; do
    echo "| $name | $(summary "$name" 5) | $(summary "$name" 6) | $(summary "$name" 7) | $(summary "$name" 8) | $(summary "$name" 4) | $(summary "$name" 9) | $(summary "$name" 10) |"
done
if [[ ",$only," == *,axum-ct,* ]]; then
    echo
    echo "Server CPU per request over axum-ct's in the same repeat (the repeats are seconds apart, so"
    echo "drift in the machine's speed cancels), median (min-max) over the $runs repeats:"
    echo
    for name in ${only//,/ }; do
        [ "$name" = axum-ct ] && continue
        echo "- $name: $(ratio_to axum-ct "$name" 6 | median_spread "%.2fx (%.2f-%.2f)")"
    done
fi
if [[ ",$only," == *,axum-2w,* ]]; then
    echo
    echo "req/s over axum-2w's in the same repeat (meaningful only where the server's CPU, not"
    echo "wrk's, is the one near 100%), median (min-max) over the $runs repeats:"
    echo
    for name in ${only//,/ }; do
        [ "$name" = axum-2w ] && continue
        echo "- $name: $(ratio_to axum-2w "$name" 4 | median_spread "%.2fx (%.2f-%.2f)")"
    done
fi
echo
echo "System calls per request by kind (the median-syscall run of each server):"
echo
for name in ${only//,/ }; do
    median_run=$(awk -v n="$name" '$1 == n {print $5, $2}' "$work/results" | sort -g |
        awk '{r[NR] = $2} END {print r[int((NR + 1) / 2)]}')
    echo "- $name: $(sort -k2 -gr "$work/detail.$name.$median_run" | awk '{printf "%s %s, ", $1, $2}' | sed 's/, $//')"
done
