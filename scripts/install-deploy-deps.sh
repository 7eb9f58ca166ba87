#!/usr/bin/env bash
# Install what the deployment checks (tests/deploy/run.sh) need, on Debian.
#
#   * apt:    nginx + its stream module (the reverse-proxy test), openssl (test certificates),
#             ShellCheck (lints the deploy scripts), python3-venv if needed
#   * Python: a venv at ~/.cache/stompede/venv-deploy with tests/deploy/requirements.txt:
#             kubernetes-validate (schema validation, Kubernetes schemas shipped in the wheel)
#             and helm-python-sdk (Helm v4's own Go SDK as a native library: chart rendering
#             and lint with Helm's real template engine; no helm binary is published on any
#             registry this project can reach)
#   * npm:    tests/deploy/node_modules from package-lock.json (npm ci): @stomp/stompjs + ws
#
# kubectl (for `kubectl kustomize`) is not installed here: it is not a Debian package. The
# checks fail loudly when it is missing.
#
# Idempotent and non-interactive: a second run that finds everything in place changes nothing
# and takes about a second. Fails loudly on any error.
#
# Environment:
#   STOMPEDE_CACHE  cache root (default ~/.cache/stompede); the venv is $STOMPEDE_CACHE/venv-deploy
#   PYTHON          interpreter used to create the venv (default: python3 on PATH)
set -Eeuo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${STOMPEDE_CACHE:-$HOME/.cache/stompede}"
VENV="$CACHE/venv-deploy"
PY_REQS="$REPO/tests/deploy/requirements.txt"
NODE_DIR="$REPO/tests/deploy"
PYTHON="${PYTHON:-python3}"

log() { printf '[install-deploy-deps] %s\n' "$*"; }
die() { printf '[install-deploy-deps] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'die "failed at line $LINENO: $BASH_COMMAND"' ERR

# shellcheck source=SCRIPTDIR/install-lib.sh
source "$REPO/scripts/install-lib.sh"

# nginx: the test runs its own nginx (own prefix, pid and logs) and never touches the system
# service. On a machine with an init system, installing the package may start that service on
# port 80; the test does not need it and does not use port 80.
apt_install nginx libnginx-mod-stream openssl shellcheck
[ -x /usr/sbin/nginx ] || die "/usr/sbin/nginx missing after installing nginx"
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] \
  || die "ngx_stream_module.so missing after installing libnginx-mod-stream"
log "$(/usr/sbin/nginx -v 2>&1), $(openssl version), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

command -v node >/dev/null || apt_install nodejs
command -v npm >/dev/null || apt_install npm
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: need Node >= 20"

require_python_venv "$PYTHON"

# ---------------------------------------------------------------------------------------------
# Python venv
# ---------------------------------------------------------------------------------------------
py_stamp_want="$(requirements_stamp "$PYTHON" "$PY_REQS")"
py_stamp_file="$VENV/.stompede-requirements.stamp"
prepare_venv "$PYTHON" "$VENV"
py_check() {
  "$VENV/bin/python" -c 'import helm_python, kubernetes_validate, yaml; helm_python.helm_sdk_version()'
}
if [ "$(cat "$py_stamp_file" 2>/dev/null || true)" = "$py_stamp_want" ] && py_check >/dev/null 2>&1; then
  log "python packages up to date in $VENV"
else
  log "pip install -r ${PY_REQS#"$REPO"/} into $VENV (the Helm SDK wheel is 75 MB, once)"
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$PY_REQS"
  "$VENV/bin/python" -m pip check --disable-pip-version-check
  py_check || die "the deploy venv's packages do not import"
  [ -x "$VENV/bin/kubernetes-validate" ] || die "kubernetes-validate did not install its command"
  printf '%s\n' "$py_stamp_want" > "$py_stamp_file"
fi
log "helm SDK $("$VENV/bin/python" -c 'import helm_python as h; print(h.helm_sdk_version())'), $("$VENV/bin/kubernetes-validate" --version)"

# ---------------------------------------------------------------------------------------------
# npm
# ---------------------------------------------------------------------------------------------
[ -f "$NODE_DIR/package-lock.json" ] || die "missing $NODE_DIR/package-lock.json"
npm_stamp_want="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -d' ' -f1) node$node_major"
npm_stamp_file="$NODE_DIR/node_modules/.stompede-install.stamp"
required_files=(node_modules/@stomp/stompjs/bundles/stomp.umd.js node_modules/ws/package.json)
npm_ok() {
  [ "$(cat "$npm_stamp_file" 2>/dev/null || true)" = "$npm_stamp_want" ] || return 1
  local f
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

log "done: nginx, openssl, shellcheck, the deploy venv ($VENV) and node modules are ready"
