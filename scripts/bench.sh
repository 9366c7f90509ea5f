#!/usr/bin/env bash
# Reproduces the figures in BENCHMARKS.md: the machine, build facts (binary size, dependency
# crates), the footprint table and the stall scenario, steadyloop and the axum + tokio anchor
# side by side. Prints Markdown; keep it with `scripts/bench.sh | tee bench-$(date +%F).md`.
#
# Usage: scripts/bench.sh [--smoke] [--no-anchor]
#   --smoke      short runs that only check the tooling (about a minute; not for publishing)
#   --no-anchor  skip the axum anchor (no crates.io access needed)
# Full runs take about 10 minutes; run them on a quiet machine. `wrk` is used for the light
# req/s figure when it is installed (apt-get install wrk), else a built-in load generator.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
anchor=1
for arg in "$@"; do
    case "$arg" in
        --smoke) smoke=1 ;;
        --no-anchor) anchor=0 ;;
        *) echo "usage: scripts/bench.sh [--smoke] [--no-anchor]" >&2; exit 2 ;;
    esac
done
target="${CARGO_TARGET_DIR:-target}"
anchor_dir=bench/anchors/axum
anchor_bin="$anchor_dir/target/release/axum-anchor"

echo "# steadyloop benchmark run"
echo
if [ "$smoke" = 1 ]; then
    echo "**Smoke run**: short durations that check the tooling; the numbers are not comparable."
    echo
fi
echo "## Machine"
echo
echo '```'
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "kernel:  $(uname -srm)"
echo "cpu:     $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') x $(nproc)"
echo "memory:  $(free -m | awk '/^Mem:/ {print $2 " MiB"}')"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
echo "rustc:   $(rustc -V)"
if command -v wrk >/dev/null; then
    echo "wrk:     $( (wrk -v 2>&1 || true) | head -1)"
else
    echo "wrk:     not installed (footprint uses its built-in load)"
fi
echo '```'
echo

echo "Building (release)..." >&2
# The demo binary and the benchmark tools (bench/, a non-default workspace member).
cargo build --release --quiet --workspace
if [ "$anchor" = 1 ]; then
    cargo build --release --quiet --manifest-path "$anchor_dir/Cargo.toml"
fi

# Crates in the normal-dependency tree with default features, without the root itself.
crates() {
    cargo tree -e normal --prefix none "$@" | sed 's/ (\*)$//; s/ (proc-macro)$//' | sort -u | wc -l | awk '{print $1 - 1}'
}

echo "## Build facts"
echo
if [ "$anchor" = 1 ]; then
    echo "| figure | steadyloop | axum anchor |"
    echo "| --- | --- | --- |"
    echo "| stripped release binary, bytes | $(stat -c %s "$target/release/steadyloop") | $(stat -c %s "$anchor_bin") |"
    echo "| crates in the dependency tree (normal, default features, excluding the root) | $(crates) | $(crates --manifest-path "$anchor_dir/Cargo.toml") |"
else
    echo "| figure | steadyloop |"
    echo "| --- | --- |"
    echo "| stripped release binary, bytes | $(stat -c %s "$target/release/steadyloop") |"
    echo "| crates in the dependency tree (normal, default features, excluding the root) | $(crates) |"
fi
echo

anchor_flag=()
if [ "$anchor" = 1 ]; then
    anchor_flag=(--anchor axum)
fi

echo "## Footprint and light throughput"
echo
footprint=("$target/release/footprint" --bin "$target/release/steadyloop" "${anchor_flag[@]}")
if [ "$smoke" = 1 ]; then
    footprint+=(--repeats 1 --load-secs 2 --offload-ops 5000 --offload-repeats 3)
fi
echo '```'
echo "${footprint[*]}"
echo '```'
"${footprint[@]}"
echo

echo "## Stall scenario"
echo
variants=inline,offload,offload-normal-prio
if [ "$anchor" = 1 ]; then
    variants+=,axum,axum-inline
fi
stall=("$target/release/stall_bench" --variants "$variants")
if [ "$smoke" = 1 ]; then
    stall+=(--runs 1 --baseline-secs 1 --heavy-secs 3 --probe-delay-secs 0.5 --probe-secs 2)
fi
echo '```'
echo "${stall[*]}"
echo '```'
"${stall[@]}"
