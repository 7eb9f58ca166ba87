# Shared settings for the project's scripts. Source it; do not run it.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export STOMPEDE_CACHE="${STOMPEDE_CACHE:-$HOME/.cache/stompede}"
# One target directory reused across runs and clones: a second build is
# incremental instead of starting from nothing.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$STOMPEDE_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# cargo-deny (licenses, bans, sources, advisories), installed by
# scripts/install-test-deps.sh into its own root under the cache.
CARGO_DENY_VERSION="0.20.2"
CARGO_DENY_ROOT="$STOMPEDE_CACHE/cargo-deny"
CARGO_DENY="$CARGO_DENY_ROOT/bin/cargo-deny"

require_cargo() {
  if ! command -v cargo >/dev/null 2>&1; then
    for candidate in "$HOME/.cargo/bin"; do
      [ -x "$candidate/cargo" ] && export PATH="$candidate:$PATH"
    done
  fi
  command -v cargo >/dev/null 2>&1 || {
    echo "cargo not found: install Rust 1.85 or newer (https://rustup.rs), then run this again" >&2
    exit 1
  }
}

# stage NAME COMMAND...: runs a command, printing how long it took.
STAGE_SUMMARY=()
stage() {
  local name="$1"
  shift
  local start=$SECONDS
  echo
  echo "==> [$name] $*"
  if "$@"; then
    STAGE_SUMMARY+=("$(printf '%-28s %5ds  ok' "$name" $((SECONDS - start)))")
    echo "==> [$name] done in $((SECONDS - start))s"
  else
    local rc=$?
    STAGE_SUMMARY+=("$(printf '%-28s %5ds  FAILED (exit %d)' "$name" $((SECONDS - start)) "$rc")")
    echo "==> [$name] FAILED after $((SECONDS - start))s (exit $rc)"
    print_summary
    exit "$rc"
  fi
}

print_summary() {
  echo
  echo "Stage timings:"
  printf '  %s\n' "${STAGE_SUMMARY[@]}"
}
