#!/usr/bin/env bash
# Measures the native and tiny_http front ends side by side (README: "Front ends compared").
# Usage: scripts/frontend-compare.sh [RUNS]   (default 3 runs per figure; takes ~1 min per run)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --features tiny_http --bin steadyloop --example frontend_compare
target="${CARGO_TARGET_DIR:-target}"
exec "$target/release/examples/frontend_compare" "$target/release/steadyloop" "$@"
