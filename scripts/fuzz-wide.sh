#!/usr/bin/env bash
# The randomized cancellation programs (runner-core/tests/cancellation_fuzz.rs)
# over wide seed ranges, on demand (CI runs 30,000 of each kind). A release
# build; with --asan, under AddressSanitizer (needs a nightly toolchain:
# `rustup toolchain install nightly`), which reports a use-after-free where a
# plain build may go on, or abort without a word.
#
#   scripts/fuzz-wide.sh [--asan] [FIRST-LAST [WIDER_FIRST-WIDER_LAST]]
#
# Defaults: 1-1000000 for both. A plain build runs about 3,000 seeds a
# second, an AddressSanitizer build about 1,300 (2-core machine). A failing
# seed is printed; replay it alone with the same range syntax (N-N). A seed
# that crashes the process is the last one printed with RUNNER_FUZZ_TRACE=1
# set (each seed is printed as it starts).
set -euo pipefail
cd "$(dirname "$0")/.."

asan=0
if [ "${1:-}" = "--asan" ]; then
    asan=1
    shift
fi
export RUNNER_FUZZ_SEEDS="${1:-1-1000000}"
export RUNNER_FUZZ_WIDER_SEEDS="${2:-$RUNNER_FUZZ_SEEDS}"

if [ "$asan" = 1 ]; then
    target=$(rustc +nightly -vV | sed -n 's/^host: //p')
    export ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
        cargo +nightly test --release --target "$target" -p runner-core --test cancellation_fuzz -- --nocapture
else
    cargo test --release -p runner-core --test cancellation_fuzz -- --nocapture
fi
