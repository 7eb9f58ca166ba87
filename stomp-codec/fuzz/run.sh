#!/usr/bin/env bash
# Fuzzes the STOMP decoder with cargo-fuzz (libFuzzer).
#
#   stomp-codec/fuzz/run.sh [RUNS] [extra libFuzzer flags...]
#
# RUNS defaults to 10_000_000 executions. Installs cargo-fuzz if missing.
# cargo-fuzz needs nightly compiler flags; on a stable toolchain
# RUSTC_BOOTSTRAP=1 enables them. Crashes land in fuzz/artifacts/decode/;
# copy them to fuzz/regressions/ once fixed (tests/fuzz_regressions.rs
# replays them).
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

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stompede/target-fuzz}"
mkdir -p corpus/decode artifacts/decode
WORK_CORPUS="${FUZZ_CORPUS_DIR:-$CARGO_TARGET_DIR/corpus-decode}"
mkdir -p "$WORK_CORPUS"

# The working corpus grows outside the repository; the seed corpus is read
# only. -print_final_stats reports the exact number of executions.
cargo "${TOOLCHAIN[@]}" fuzz run decode "$WORK_CORPUS" corpus/decode -- \
    -runs="$RUNS" -max_len=4096 -timeout=10 -print_final_stats=1 "$@"
