#!/usr/bin/env bash
# Install everything the real-client test suites (tests/clients/) need, on Debian.
#
#   * apt:    chromium (headless browser suite), nodejs >= 20 if absent, python3-venv if needed
#   * Python: a venv at ~/.cache/stompede/venv with tests/clients/python/requirements.txt
#   * npm:    tests/clients/node/node_modules from package-lock.json (npm ci)
#   * cargo:  cargo-deny (pinned in scripts/common.sh) in ~/.cache/stompede/cargo-deny
#
# Idempotent and non-interactive: a second run that finds everything in place changes nothing
# and takes about a second. Prints what it does; fails loudly on any error.
#
# Environment:
#   STOMPEDE_CACHE  cache root (default ~/.cache/stompede); the venv lives in $STOMPEDE_CACHE/venv
#   PYTHON          interpreter used to create the venv (default: python3 on PATH)
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STOMPEDE_CACHE:-$HOME/.cache/stompede}"
VENV="$CACHE/venv"
PY_REQS="$REPO/tests/clients/python/requirements.txt"
NODE_DIR="$REPO/tests/clients/node"
PYTHON="${PYTHON:-python3}"
MIN_NODE_MAJOR=20

log() { printf '[install-test-deps] %s\n' "$*"; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

# shellcheck source=SCRIPTDIR/install-lib.sh
source "$REPO/scripts/install-lib.sh"

# ---------------------------------------------------------------------------------------------
# apt
# ---------------------------------------------------------------------------------------------
# Chromium for the browser suite. /usr/bin/chromium is what the suite launches.
apt_install chromium
[ -x /usr/bin/chromium ] || die "/usr/bin/chromium missing after installing the chromium package"
log "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"

# Node.js >= 20 with npm.
if ! command -v node >/dev/null; then
  apt_install nodejs
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge "$MIN_NODE_MAJOR" ] \
  || die "node $(node --version) is too old: the client suites need Node >= $MIN_NODE_MAJOR"
if ! command -v npm >/dev/null; then
  apt_install npm
fi
log "node $(node --version), npm $(npm --version 2>/dev/null)"

# Python with venv + ensurepip.
require_python_venv "$PYTHON"

# ---------------------------------------------------------------------------------------------
# Python venv
# ---------------------------------------------------------------------------------------------
py_stamp_want="$(requirements_stamp "$PYTHON" "$PY_REQS")"
py_stamp_file="$VENV/.stompede-requirements.stamp"

prepare_venv "$PYTHON" "$VENV"
if [ "$(cat "$py_stamp_file" 2>/dev/null || true)" = "$py_stamp_want" ] \
   && "$VENV/bin/python" -c 'import stomp, pytest, pytest_timeout' >/dev/null 2>&1; then
  log "python packages up to date in $VENV"
else
  log "pip install -r ${PY_REQS#"$REPO"/} into $VENV"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$PY_REQS"
  "$VENV/bin/python" -m pip check --disable-pip-version-check
  "$VENV/bin/python" -c 'import stomp, pytest, pytest_timeout'
  [ -x "$VENV/bin/stomp" ] || die "stomp.py did not install its 'stomp' command in $VENV/bin"
  printf '%s\n' "$py_stamp_want" > "$py_stamp_file"
fi

# ---------------------------------------------------------------------------------------------
# npm
# ---------------------------------------------------------------------------------------------
[ -f "$NODE_DIR/package-lock.json" ] || die "missing $NODE_DIR/package-lock.json"
npm_stamp_want="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node$node_major"
npm_stamp_file="$NODE_DIR/node_modules/.stompede-install.stamp"
required_files=(
  node_modules/@stomp/stompjs/bundles/stomp.umd.js
  node_modules/@stomp/rx-stomp/bundles/rx-stomp.umd.js
  node_modules/rxjs/dist/bundles/rxjs.umd.js
  node_modules/ws/package.json
  node_modules/playwright-core/package.json
)
npm_ok() {
  [ "$(cat "$npm_stamp_file" 2>/dev/null || true)" = "$npm_stamp_want" ] || return 1
  for f in "${required_files[@]}"; do [ -f "$NODE_DIR/$f" ] || return 1; done
}
if npm_ok; then
  log "node modules up to date in ${NODE_DIR#"$REPO"/}"
else
  log "npm ci in ${NODE_DIR#"$REPO"/}"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  for f in "${required_files[@]}"; do
    [ -f "$NODE_DIR/$f" ] || die "npm ci did not provide $f"
  done
  printf '%s\n' "$npm_stamp_want" > "$npm_stamp_file"
fi

# ---------------------------------------------------------------------------------------------
# cargo-deny (built from crates.io with its lock file, into a cached root)
# ---------------------------------------------------------------------------------------------
CARGO_DENY_VERSION="$(sed -n 's/^CARGO_DENY_VERSION="\(.*\)"$/\1/p' "$REPO/scripts/common.sh")"
[ -n "$CARGO_DENY_VERSION" ] || die "CARGO_DENY_VERSION not found in scripts/common.sh"
DENY_ROOT="$CACHE/cargo-deny"
if [ "$("$DENY_ROOT/bin/cargo-deny" --version 2>/dev/null || true)" = "cargo-deny $CARGO_DENY_VERSION" ]; then
  log "cargo-deny $CARGO_DENY_VERSION present in $DENY_ROOT"
else
  command -v cargo >/dev/null || PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null || die "cargo not found: needed to install cargo-deny"
  log "cargo install cargo-deny $CARGO_DENY_VERSION --locked into $DENY_ROOT (a few minutes, once)"
  CARGO_TARGET_DIR="$DENY_ROOT/build" cargo install cargo-deny --version "$CARGO_DENY_VERSION" \
    --locked --root "$DENY_ROOT" --force
  rm -rf "$DENY_ROOT/build"
  [ "$("$DENY_ROOT/bin/cargo-deny" --version)" = "cargo-deny $CARGO_DENY_VERSION" ] \
    || die "cargo-deny $CARGO_DENY_VERSION did not install"
fi

log "done: chromium, node modules, python venv ($VENV) and cargo-deny are ready"
