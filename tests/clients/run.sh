#!/usr/bin/env bash
# Run the real-client suites (python/stomp.py over TCP, node/stompjs over WebSocket, browser/
# rx-stomp in headless Chromium, web-chat/ the example chat page in headless Chromium) in that
# order. Each suite starts its own fresh stompede on free loopback ports and stops it when done.
#
#   tests/clients/run.sh              build (if STOMPEDE_BIN is unset) and test stompede
#   tests/clients/run.sh --external   test the brokers named by STOMP_TCP_URL / STOMP_WS_URL
#                                     (web-chat is left out: it needs stompede's chat plugin and
#                                     --static-dir)
#   tests/clients/run.sh python node  run only the named suites (python, node, browser, web-chat)
#
# web-chat screenshots go to tests/clients/artifacts/ (or STOMP_TEST_ARTIFACTS); CI keeps them.
#
# STOMPEDE_BIN: broker binary; if unset, `cargo build -p stompede` is run and
# $CARGO_TARGET_DIR/debug/stompede used (CARGO_TARGET_DIR defaults to ~/.cache/stompede/target).
# Dependencies come from scripts/install-test-deps.sh; anything missing is a failure.
# Exits non-zero if any suite fails, cannot run, or runs no test.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${STOMPEDE_CACHE:-$HOME/.cache/stompede}"
VENV="$CACHE/venv"
SUITE_TIMEOUT="${STOMP_SUITE_TIMEOUT:-900}"

say() { printf '[clients] %s\n' "$*"; }
# Seconds (one decimal) since a `date +%s%N` timestamp.
elapsed() { local ms=$(( ($(date +%s%N) - $1) / 1000000 )); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
die() { printf '[clients] ERROR: %s\n' "$*" >&2; exit 2; }

external=0
suites=()
for arg in "$@"; do
  case "$arg" in
    --external) external=1 ;;
    python|node|browser|web-chat) suites+=("$arg") ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
if [ "${#suites[@]}" -eq 0 ]; then
  suites=(python node browser)
  [ "$external" -eq 1 ] || suites+=(web-chat)
fi
if [ "$external" -eq 1 ]; then
  for s in "${suites[@]}"; do
    [ "$s" != web-chat ] || die "the web-chat suite starts stompede itself (chat plugin, --static-dir): not with --external"
  done
fi

# ---- the broker -------------------------------------------------------------------------------
if [ "$external" -eq 1 ]; then
  [ -n "${STOMP_TCP_URL:-}" ] || die "--external needs STOMP_TCP_URL (e.g. tcp://127.0.0.1:61613)"
  [ -n "${STOMP_WS_URL:-}" ] || die "--external needs STOMP_WS_URL (e.g. ws://127.0.0.1:15674/ws)"
  say "testing external brokers: $STOMP_TCP_URL and $STOMP_WS_URL"
else
  unset STOMP_TCP_URL STOMP_WS_URL
  if [ -z "${STOMPEDE_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stompede/target}"
    command -v cargo >/dev/null || die "cargo not found and STOMPEDE_BIN not set"
    say "building stompede (cargo build -p stompede, target dir $CARGO_TARGET_DIR)"
    build_start=$(date +%s%N)
    (cd "$REPO" && cargo build -p stompede) || die "cargo build -p stompede failed"
    say "build took $(elapsed "$build_start") s"
    STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede"
  fi
  [ -x "$STOMPEDE_BIN" ] || die "broker binary $STOMPEDE_BIN is missing or not executable"
  STOMPEDE_BIN="$(cd "$(dirname "$STOMPEDE_BIN")" && pwd)/$(basename "$STOMPEDE_BIN")"
  export STOMPEDE_BIN
  say "broker binary: $STOMPEDE_BIN"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/stompede-clients.XXXXXX")"
export STOMPEDE_LOG_DIR="$WORK/logs"
mkdir -p "$STOMPEDE_LOG_DIR"
say "logs and reports: $WORK"

# ---- helpers ----------------------------------------------------------------------------------
declare -A RESULT TIME COUNTS
total_pass=0
total_fail=0


# Dump the broker logs of a failed suite (its files are named broker-<suite>-*.log).
show_logs() {
  local pattern="$1" f
  for f in "$STOMPEDE_LOG_DIR"/broker-$pattern-*.log; do
    [ -f "$f" ] || continue
    say "---- last lines of $f"
    tail -n 40 "$f"
  done
}

# Read "# tests/pass/fail/cancelled/skipped/todo N" from a node --test TAP report.
tap_count() { awk -v k="# $2" '$1" "$2 == k { n = $3 } END { print n + 0 }' "$1"; }

check_python_deps() {
  [ -x "$VENV/bin/python" ] || { echo "no venv at $VENV"; return 1; }
  "$VENV/bin/python" -c 'import stomp, pytest, pytest_timeout' 2>&1 || return 1
  [ -x "$VENV/bin/stomp" ] || { echo "no stomp command in $VENV/bin"; return 1; }
}

check_node_deps() {
  command -v node >/dev/null || { echo "node not found"; return 1; }
  local f
  for f in @stomp/stompjs/bundles/stomp.umd.js @stomp/rx-stomp/bundles/rx-stomp.umd.js \
           rxjs/dist/bundles/rxjs.umd.js ws/package.json playwright-core/package.json; do
    [ -f "$HERE/node/node_modules/$f" ] || { echo "missing node module file node_modules/$f"; return 1; }
  done
}

run_python() {
  local why
  why="$(check_python_deps)" || { say "python suite cannot run: $why (run scripts/install-test-deps.sh)"; return 2; }
  local junit="$WORK/python-junit.xml"
  (cd "$HERE/python" && timeout --kill-after=30 "$SUITE_TIMEOUT" \
      "$VENV/bin/python" -m pytest -q --junitxml="$junit" .)
  local rc=$?
  [ "$rc" -eq 5 ] && say "pytest collected no tests"
  [ -f "$junit" ] || { say "pytest wrote no report"; return 2; }
  read -r tests fails errors skips < <("$VENV/bin/python" - "$junit" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) for s in suites)
e = sum(int(s.get("errors", 0)) for s in suites)
k = sum(int(s.get("skipped", 0)) for s in suites)
print(t, f, e, k)
EOF
)
  COUNTS[python]="$((tests - fails - errors - skips)) passed, $((fails + errors)) failed, $skips skipped"
  total_pass=$((total_pass + tests - fails - errors - skips))
  total_fail=$((total_fail + fails + errors + skips))
  [ "$tests" -gt 0 ] || { say "python suite ran no test"; return 2; }
  [ "$skips" -eq 0 ] || { say "python suite skipped $skips test(s): skipping is a failure here"; return 1; }
  return "$rc"
}

# run_node_suite NAME FILE...
run_node_suite() {
  local name="$1"; shift
  local why
  why="$(check_node_deps)" || { say "$name suite cannot run: $why (run scripts/install-test-deps.sh)"; return 2; }
  [ "$#" -gt 0 ] || { say "$name suite has no test files"; return 2; }
  local tap="$WORK/$name.tap"
  (cd "$HERE/node" && timeout --kill-after=30 "$SUITE_TIMEOUT" \
      node --test --test-concurrency=1 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tap" "$@")
  local rc=$?
  [ -f "$tap" ] || { say "$name: node --test wrote no report"; return 2; }
  local tests pass fail cancelled skipped todo
  tests=$(tap_count "$tap" tests); pass=$(tap_count "$tap" pass); fail=$(tap_count "$tap" fail)
  cancelled=$(tap_count "$tap" cancelled); skipped=$(tap_count "$tap" skipped); todo=$(tap_count "$tap" todo)
  COUNTS[$name]="$pass passed, $((fail + cancelled)) failed, $((skipped + todo)) skipped"
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail + cancelled + skipped + todo))
  [ "$tests" -gt 0 ] || { say "$name suite ran no test"; return 2; }
  [ $((skipped + todo)) -eq 0 ] || { say "$name suite skipped tests: skipping is a failure here"; return 1; }
  [ $((fail + cancelled)) -eq 0 ] || return 1
  return "$rc"
}

run_suite() {
  local name="$1" start rc
  say "===== $name suite"
  start=$(date +%s%N)
  case "$name" in
    python) run_python ;;
    node) run_node_suite node "$HERE"/node/*.test.mjs ;;
    browser) run_node_suite browser "$HERE"/browser/*.test.mjs ;;
    web-chat)
      export STOMP_TEST_ARTIFACTS="${STOMP_TEST_ARTIFACTS:-$HERE/artifacts}"
      say "screenshots: $STOMP_TEST_ARTIFACTS"
      run_node_suite web-chat "$HERE"/browser-chat/*.test.mjs ;;
  esac
  rc=$?
  TIME[$name]="$(elapsed "$start")"
  if [ "$rc" -eq 0 ]; then
    RESULT[$name]="ok"
  else
    RESULT[$name]="FAILED (exit $rc)"
    # A suite that could not run at all still counts as one failure in the closing line.
    [ -n "${COUNTS[$name]:-}" ] || total_fail=$((total_fail + 1))
    show_logs "$name"
    [ "$name" = node ] && { show_logs stompjs; show_logs raw-ws; }
  fi
  say "===== $name suite: ${RESULT[$name]} in ${TIME[$name]} s"
}

for s in "${suites[@]}"; do run_suite "$s"; done

# ---- summary ----------------------------------------------------------------------------------
failed=0
say "summary:"
for s in "${suites[@]}"; do
  printf '[clients]   %-8s %-18s %7s s   %s\n' "$s" "${RESULT[$s]}" "${TIME[$s]}" "${COUNTS[$s]:-no test counts}"
  [ "${RESULT[$s]}" = ok ] || failed=1
done
echo "client tests: $total_pass passed, $total_fail failed"
if [ "$failed" -ne 0 ]; then
  say "FAILED (logs in $WORK)"
  exit 1
fi
rm -rf "$WORK"
exit 0
