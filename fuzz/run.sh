#!/usr/bin/env bash
# Runs the frame decoder fuzz target for a bounded time (default 60 s).
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
cargo +nightly fuzz run decode_frames -- \
  -max_total_time="$seconds" -dict=decode_frames.dict
