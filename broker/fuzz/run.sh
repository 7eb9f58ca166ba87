#!/usr/bin/env bash
# Fuzzes one broker session with cargo-fuzz (libFuzzer): structured frame
# sequences written to an in-process session (see harness.rs).
#
#   broker/fuzz/run.sh [RUNS] [extra libFuzzer flags...]
#
# RUNS defaults to 10_000_000 executions. Installs cargo-fuzz if missing.
# cargo-fuzz needs nightly compiler flags; on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them. FUZZ_SANITIZER (default: none; the broker
# forbids unsafe code, and without ASan an execution is several times
# faster) may be set to "address". A crash lands in fuzz/artifacts/session/;
# get its raw bytes with
#   STOMPEDE_FUZZ_DUMP=regressions/NAME.bin cargo fuzz run session ARTIFACT
# and keep them in regressions/ (tests/hostile.rs replays them).
set -euo pipefail
cd "$(dirname "$0")"

RUNS="${1:-10000000}"
shift || true
RUNS="${RUNS//_/}"

if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/cargo-fuzz" ]; then
    cargo install cargo-fuzz --locked
fi
export PATH="$HOME/.cargo/bin:$PATH"

# Use nightly if rustup has it, else unlock nightly flags on stable.
TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stompede/target-fuzz-session}"
mkdir -p corpus/session artifacts/session
WORK_CORPUS="${FUZZ_CORPUS_DIR:-$CARGO_TARGET_DIR/corpus-session}"
mkdir -p "$WORK_CORPUS"

# The working corpus grows outside the repository; the seed corpus is read
# only. -print_final_stats reports the exact number of executions. The RSS
# and malloc limits turn unbounded memory into a reported crash.
cargo "${TOOLCHAIN[@]}" fuzz run --sanitizer "${FUZZ_SANITIZER:-none}" session \
    "$WORK_CORPUS" corpus/session -- \
    -runs="$RUNS" -max_len=4096 -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 "$@"
