#!/usr/bin/env bash
# Builds the demo binary under release-profile variants and measures, for each, the stripped
# size, light req/s (wrk, 32 keep-alive connections on GET /healthz) and the time of one report
# (wrk, 1 connection on GET /report/inline: the report's CPU cost plus one HTTP round trip), each
# with the server's own CPU time per request from /proc/PID/stat, which other load on the host
# disturbs less than req/s.
# Measurement rounds are interleaved across variants; medians with min–max are printed.
#
# Usage: scripts/size_profiles.sh [--rounds N] [--secs S]   (defaults: 3 rounds of 5 s)
# Needs wrk. Each variant builds in its own target dir under ${SIZE_TARGET_DIR:-target/size-profiles}.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3
secs=5
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --secs) secs=$2; shift 2 ;;
        *) echo "usage: scripts/size_profiles.sh [--rounds N] [--secs S]" >&2; exit 2 ;;
    esac
done
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
dir="${SIZE_TARGET_DIR:-target/size-profiles}"
mkdir -p "$dir"

# name|cargo --config overrides, space-separated (empty: the profile in Cargo.toml, opt-level "s")
variants=(
    'os|'
    'o3|profile.release.opt-level=3'
    'o2|profile.release.opt-level=2'
    'oz|profile.release.opt-level="z"'
    'o3-deps-s|profile.release.opt-level=3 profile.release.package."*".opt-level="s"'
    'os-thin|profile.release.lto="thin"'
)

for v in "${variants[@]}"; do
    name=${v%%|*}
    config=${v#*|}
    echo "building $name ${config:-(Cargo.toml profile)}" >&2
    # One `--config` per space-separated override.
    overrides=()
    for setting in $config; do
        overrides+=(--config "$setting")
    done
    CARGO_TARGET_DIR="$dir/$name" cargo build --release --quiet --bin steadyloop "${overrides[@]}"
done

# Prints "median (min–max)" of the numbers on stdin.
spread() {
    sort -g | awk '{v[NR] = $1} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.1f (%.1f–%.1f)", m, v[1], v[NR]
    }'
}

tick_us=$((1000000 / $(getconf CLK_TCK)))

# CPU time (user + system) process $1 has used, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Starts variant $1, runs wrk against path $3 with $2 connections, prints Requests/sec and the
# server's CPU microseconds per request (less sensitive than req/s to other load on the host).
measure() {
    local bin="$dir/$1/release/steadyloop" out pid addr before wrk_out requests
    out=$(mktemp)
    "$bin" --addr 127.0.0.1:0 >"$out" &
    pid=$!
    until grep -q 'http://' "$out"; do sleep 0.05; done
    addr=$(grep -o 'http://[^ ]*' "$out" | head -1)
    before=$(cpu_ticks "$pid")
    wrk_out=$(wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${secs}s" "$addr$3")
    requests=$(echo "$wrk_out" | awk '/requests in/ {print $1}')
    echo "$wrk_out" | awk -v ticks=$(( $(cpu_ticks "$pid") - before )) -v tick_us="$tick_us" -v n="$requests" \
        '/^Requests\/sec:/ {printf "%s %.2f\n", $2, ticks * tick_us / n}'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$out"
}

results=$(mktemp -d)
for round in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
        name=${v%%|*}
        echo "round $round: $name" >&2
        measure "$name" 32 /healthz >"$results/last"
        cut -d' ' -f1 "$results/last" >>"$results/$name.light"
        cut -d' ' -f2 "$results/last" >>"$results/$name.light-cpu"
        measure "$name" 1 '/report/inline?rows=20000' >"$results/last"
        awk '{printf "%.3f\n", 1000 / $1}' "$results/last" >>"$results/$name.report"
        awk '{printf "%.3f\n", $2 / 1000}' "$results/last" >>"$results/$name.report-cpu"
    done
done

base=$(stat -c %s "$dir/o3/release/steadyloop")
echo "Release-profile variants of the demo binary: $rounds round(s) of $secs s, $(date -u +%Y-%m-%d), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| variant | profile change | stripped bytes | vs opt-level 3 | GET /healthz req/s (32 conns) | server CPU µs per /healthz | report ms (20,000 rows, 1 conn) | server CPU ms per report |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for v in "${variants[@]}"; do
    name=${v%%|*}
    config=${v#*|}
    bytes=$(stat -c %s "$dir/$name/release/steadyloop")
    echo "| $name | ${config:-none (Cargo.toml)} | $bytes | $(awk -v a="$bytes" -v b="$base" 'BEGIN {printf "%+.1f%%", (a - b) * 100 / b}') | $(spread <"$results/$name.light") | $(spread <"$results/$name.light-cpu") | $(spread <"$results/$name.report") | $(spread <"$results/$name.report-cpu") |"
done
rm -rf "$results"
