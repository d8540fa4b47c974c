#!/usr/bin/env bash
# Fuzzes every target for a bounded time each: a coverage-guided libFuzzer
# run with the address sanitizer, through cargo-fuzz.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]     (default 25; CI runs it from .ci/run)
#   fuzz/run.sh build                    (builds the targets only: CI builds
#                                         them while the VM suite runs)
#
# Needs no nightly toolchain: cargo-fuzz's -Z flags (sanitizer, coverage
# passes) are accepted by a stable rustc with RUSTC_BOOTSTRAP=1, and the
# sanitizer runtimes ship with the stable x86_64 Linux toolchain. Installs
# cargo-fuzz (pinned) when it is missing.
#
# Every run starts from seeds/ (valid streams, and every input that ever
# crashed a target: put a crash file from artifacts/ there, it is then
# replayed on every run) plus the target's own corpus/ from earlier runs.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-25}"
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  echo "fuzz: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
export RUSTC_BOOTSTRAP=1
# The copy-stream target makes a directory per input: keep it in memory.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  export TMPDIR=/dev/shm
fi

cargo fuzz build
if [ "$seconds" = build ]; then
  exit 0
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
  echo "fuzz: $target for ${seconds}s"
  mkdir -p "corpus/$target"
  status=0
  cargo fuzz run "$target" "corpus/$target" seeds -- \
    -max_total_time="$seconds" -timeout=10 -dict=frames.dict -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz: $target FAILED (status $status); the input is in fuzz/artifacts/$target:" \
      "fix the bug, then add the input to fuzz/seeds as a regression" >&2
    exit 1
  fi
done
