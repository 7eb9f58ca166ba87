#!/usr/bin/env bash
# Installs Tansu 0.6.0, the Kafka-compatible broker the clustering tests run
# against, into a cached root (~/.cache/stompede/tansu). Idempotent: skips
# the build (10-25 minutes on 2 cores) when that root already holds a tansu
# printing version 0.6.0. The dynostore and libsql features give it storage
# engines; without them it cannot start a broker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_cargo

TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$STOMPEDE_CACHE/tansu}"
TANSU_BIN="$TANSU_ROOT/bin/tansu"

if [ -x "$TANSU_BIN" ] && "$TANSU_BIN" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "[install-tansu] tansu $TANSU_VERSION present in $TANSU_ROOT"
  exit 0
fi
echo "[install-tansu] building tansu $TANSU_VERSION into $TANSU_ROOT (10-25 minutes on 2 cores)"
# Its own target directory: the project's is not disturbed, and a failed
# build resumes where it stopped.
CARGO_TARGET_DIR="$STOMPEDE_CACHE/tansu-build" \
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
  --root "$TANSU_ROOT"
"$TANSU_BIN" --version
