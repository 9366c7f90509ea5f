#!/usr/bin/env bash
# Measures the native and tiny_http front ends side by side (docs/tiny_http.md: "Front ends compared").
# Usage: scripts/frontend-compare.sh [RUNS]   (default 3 runs per figure; takes ~1 min per run)
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo with both front ends, then the tool (bench/, a non-default workspace member).
cargo build --release --features tiny_http --bin steadyloop
cargo build --release -p steadyloop-bench --bin frontend_compare
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/frontend_compare" "$target/release/steadyloop" "$@"
