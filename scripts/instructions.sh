#!/usr/bin/env bash
# User-space instructions per light keep-alive request (`GET /healthz`, the demo's defaults:
# request-id and gzip layers on), counted by callgrind: repeatable on a noisy machine, so it is
# the figure to steer hot-path work by (server CPU per request, from scripts/hotpath.sh, is the
# one the targets are stated in).
#
# The demo is built with symbols into its own target dir, started under callgrind, warmed up
# with `wrk -t1 -c32 -d2s`; the counters are zeroed and `wrk -t1 -c32 -d6s` runs (32 connections,
# so the loop batches readiness as it does under real load); the instructions counted during
# that run are divided by the requests wrk completed, and so are the calls into libc's malloc
# (allocations per request). With --top N the N costliest functions
# of the measured run (self cost, per request) follow.
#
# Usage: scripts/instructions.sh [--top N] [--path PATH] [--bin PATH] [--keep FILE]
#   --keep FILE  keep the measured run's callgrind dump there (callgrind_annotate --tree=caller
#                FILE shows who calls what)
#   --bin PATH   measure this steadyloop demo binary instead of building one (any commit;
#                without symbols only the total is meaningful)
#   --axum ARGS  measure the axum anchor instead (built from bench/anchors/axum, stripped: the
#                total and malloc calls only), started with these arguments after --addr, e.g.
#                --axum --current-thread  or  --axum "--current-thread --layers"
# The environment passes through: STEADYLOOP_DEMO_LAYERS=off measures the demo without its
# layers (the anchor's work).
# Needs valgrind (callgrind, callgrind_control, callgrind_annotate) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

top=0
path=/healthz
bin=""
keep=""
axum=""
while [ $# -gt 0 ]; do
    case "$1" in
        --top) top=$2; shift 2 ;;
        --path) path=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        --axum) axum=$2; shift 2 ;;
        *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//; /^set -e/d' >&2; exit 2 ;;
    esac
done

extra=()
if [ -n "$axum" ]; then
    cargo build --release --quiet --manifest-path bench/anchors/axum/Cargo.toml
    bin=bench/anchors/axum/target/release/axum-anchor
    read -r -a extra <<<"$axum"
elif [ -z "$bin" ]; then
    target=${PROFILE_TARGET_DIR:-target/profile}
    CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        cargo build --release --quiet --bin steadyloop --target-dir "$target"
    bin="$target/release/steadyloop"
fi
port=$((18600 + RANDOM % 200))
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT

STEADYLOOP_LOG=off valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
    "$bin" --addr 127.0.0.1:$port "${extra[@]}" >/dev/null 2>"$work/vg.log" &
pid=$!
wait_port $port 300
wrk -t1 -c32 -d2s "http://127.0.0.1:$port$path" >/dev/null
callgrind_control -z $pid >/dev/null 2>&1
out=$(wrk -t1 -c32 -d6s "http://127.0.0.1:$port$path")
callgrind_control -d measured $pid >/dev/null 2>&1
kill $pid; wait $pid 2>/dev/null || true
requests=$(echo "$out" | awk '/requests in/ {print $1}')
# The explicit dump (cg.out.1) holds the measured run alone; the final one, at exit, only the
# shutdown.
dump="$work/cg.out.1"
total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
[ -z "$keep" ] || cp "$dump" "$keep"
# Allocations: calls into libc's malloc (callgrind's call counts, summed over its callers).
mallocs=$(python3 - "$dump" <<'PY'
import re, sys
names, target, calls = {}, None, 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        target = names.get(m.group(1)) if line.startswith("cfn=") else None
    elif line.startswith("calls=") and target == "malloc":
        calls += int(line.split()[0][6:])
print(calls)
PY
)
echo "GET $path: $requests requests, $total instructions: $((total / requests)) per request," \
    "$(python3 -c "print(f'{$mallocs / $requests:.1f}')") malloc calls per request"
if [ "$top" -gt 0 ]; then
    echo
    echo "| instructions / request | function |"
    echo "| --- | --- |"
    callgrind_annotate --threshold=100 "$dump" 2>/dev/null |
        awk -v n="$requests" -v top="$top" -v total="$total" '
            /PROGRAM TOTALS/ { go = 1; next }
            go && /^ *[0-9,]+ \(/ {
                ir = $1; gsub(",", "", ir)
                if (ir + 0 > total * 0.95) next    # main and its callers (inclusive rows)
                line = $0
                sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line)
                sub(/^\/rustc\/[0-9a-f]+\/library\//, "", line)
                printf "| %d | %s |\n", ir / n, substr(line, 1, 150)
                if (++shown >= top) exit
            }'
fi
