# shellcheck shell=bash
# Shared by the installers (install-test-deps.sh, install-deploy-deps.sh):
# apt packages and Python venvs, idempotently. Source it after defining
# `log` and `die`.

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "not root and no sudo: cannot apt-get install"
  SUDO=(sudo)
fi
command -v dpkg-query >/dev/null || die "this installer expects Debian (dpkg/apt)"

APT_UPDATED=0
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# Installs the packages among "$@" that are missing (one apt-get update per run, only if needed).
apt_install() {
  local missing=() p
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update (needed for: ${missing[*]})"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  log "apt-get install ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Makes sure interpreter $1 exists and can create venvs.
require_python_venv() {
  local python=$1
  command -v "$python" >/dev/null || apt_install python3
  if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3-venv
    "$python" -c 'import venv, ensurepip' || die "$python has no working venv/ensurepip"
  fi
}

# Creates venv $2 with interpreter $1 unless a working one is there (a venv
# whose interpreter no longer starts is recreated).
prepare_venv() {
  local python=$1 venv=$2
  if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "venv at $venv is broken (its interpreter does not start): recreating it"
    rm -rf "$venv"
  fi
  if [ ! -x "$venv/bin/python" ]; then
    log "creating venv $venv with $("$python" --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    "$python" -m venv "$venv"
  fi
}

# What a venv's installed requirements depend on: the requirements file $2
# and interpreter $1's version. Installers keep it in a stamp file.
requirements_stamp() {
  local python=$1 reqs=$2
  [ -f "$reqs" ] || die "missing $reqs"
  printf '%s %s\n' "$(sha256sum "$reqs" | cut -d' ' -f1)" \
    "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
}
