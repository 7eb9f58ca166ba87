#!/usr/bin/env bash
# Installs what the tests need, then runs every test: formatting, lints,
# the Rust unit/integration/doc tests, the conformance suite against the
# real binary over TCP and WebSocket, the real-client suites (stomp.py,
# stompjs in Node, rx-stomp and the example chat page in headless
# Chromium), the cluster tests against a real Kafka-protocol server
# (Tansu), a smoke run of the load benchmark, the deployment files
# (rendered, validated, nginx in front of real nodes, the local cluster),
# and the README's newcomer path on a clean clone (start the broker, try
# it, stop it), plus cargo deny. Prints the time each stage took. Fails on the first failing stage;
# nothing is skipped silently.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"
require_cargo
# One full build per run: incremental compilation data would only grow the
# cached target directory (tens of GiB over many runs) without saving time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Runs in a subshell so that its EXIT trap stops the broker however it ends.
run_conformance() (
  local bin="$CARGO_TARGET_DIR/debug/stompede"
  local conformance="$CARGO_TARGET_DIR/debug/stompede-conformance"
  local tcp_port ws_port config
  tcp_port=$(free_port)
  ws_port=$(free_port)
  # A short heart-beat interval keeps the slow "silent client" cases short.
  config=$(mktemp)
  printf '[heartbeat]\nreceive_ms = 1000\n' >"$config"
  "$bin" --config "$config" --tcp-listen "127.0.0.1:$tcp_port" --ws-listen "127.0.0.1:$ws_port" --admin-listen= \
    --memory-store --log-level warn &
  local pid=$!
  trap 'kill $pid 2>/dev/null; rm -f "$config"' EXIT
  wait_for_port "$tcp_port"
  wait_for_port "$ws_port"
  "$conformance" --url "tcp://127.0.0.1:$tcp_port" --slow
  "$conformance" --url "ws://127.0.0.1:$ws_port/ws" --slow
)

run_bench_smoke() {
  "$CARGO_TARGET_DIR/debug/stompede-bench" --quick --start-broker "$CARGO_TARGET_DIR/debug/stompede"
}

# The hash cargo-deny gives the default advisory database URL
# (https://github.com/rustsec/advisory-db): its checkout's directory name
# under `db-path`.
ADVISORY_DB_DIR="advisory-db-3157b0e258782691"

# cargo deny: licenses, bans and sources always (deny.toml); advisories when
# the RustSec database can be had. It is a git repository on GitHub, which
# machines that reach only the package registries cannot fetch, and no
# registry (crates.io, PyPI, npm, Debian) distributes a copy. Then
# STOMPEDE_ADVISORY_DB may name a local checkout of it (used offline);
# otherwise the check is reported as not run, loudly, and
# STOMPEDE_REQUIRE_ADVISORIES=1 makes that a failure.
run_cargo_deny() {
  "$CARGO_DENY" --version
  "$CARGO_DENY" check --hide-inclusion-graph licenses bans sources
  if [ -n "${STOMPEDE_ADVISORY_DB:-}" ]; then
    [ -d "$STOMPEDE_ADVISORY_DB/crates" ] || {
      echo "STOMPEDE_ADVISORY_DB=$STOMPEDE_ADVISORY_DB is not a checkout of the RustSec advisory-db" >&2
      return 1
    }
    local root rc=0
    root=$(mktemp -d)
    ln -s "$(cd "$STOMPEDE_ADVISORY_DB" && pwd)" "$root/$ADVISORY_DB_DIR"
    sed "s|^db-urls = .*|db-path = \"$root\"|" deny.toml >"$root/deny.toml"
    echo "advisories: using the local database $STOMPEDE_ADVISORY_DB"
    "$CARGO_DENY" --offline --config "$root/deny.toml" check --hide-inclusion-graph advisories || rc=$?
    rm -rf "$root"
    return "$rc"
  elif timeout 15 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then
    "$CARGO_DENY" check --hide-inclusion-graph advisories
  else
    echo
    echo "!! cargo deny: ADVISORIES NOT CHECKED. The RustSec advisory database is a git"
    echo "!! repository on GitHub, which this machine cannot reach (only the crates.io, PyPI,"
    echo "!! npm and Debian registries are), and no registry distributes a copy. Licenses,"
    echo "!! bans and sources were checked. To check advisories, run where GitHub is"
    echo "!! reachable, or set STOMPEDE_ADVISORY_DB to a checkout of rustsec/advisory-db."
    echo
    if [ "${STOMPEDE_REQUIRE_ADVISORIES:-0}" = 1 ]; then
      return 1
    fi
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() {
  local port=$1 deadline=$((SECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "port $port did not open" >&2
      return 1
    fi
    sleep 0.1
  done
}

stage "install test dependencies" scripts/install-test-deps.sh
# The Kafka-protocol server of the cluster tests (built once, then cached).
stage "install Kafka test server (Tansu)" scripts/install-tansu.sh
stage "install deployment check dependencies" scripts/install-deploy-deps.sh
stage "cargo fmt --check" cargo fmt --all --check
stage "cargo clippy" cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
stage "cargo clippy (without kafka, as embedders may build it)" \
  cargo clippy --locked -p stompede --no-default-features --all-targets -- -D warnings
stage "cargo deny" run_cargo_deny
stage "cargo test" cargo test --locked --workspace --all-features --all-targets
stage "doc tests" cargo test --locked --workspace --all-features --doc
stage "build binaries" cargo build --locked --workspace --all-features --bins
stage "conformance (tcp + ws)" run_conformance
stage "real clients" env STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede" tests/clients/run.sh
stage "load benchmark smoke run" run_bench_smoke
stage "deployment files (k8s, helm, nginx, local cluster)" \
  env STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede" tests/deploy/run.sh
stage "README path (clean clone)" scripts/readme-path.sh
print_summary
