#!/usr/bin/env bash
# deploy/local-cluster.sh end to end: `start` prints one line per node in the documented form,
# `status` sees every node ready, a message sent on one node reaches subscribers on the two
# others (through Tansu), `stop` leaves no process and no port behind.
#
# Needs Tansu (scripts/install-tansu.sh; missing Tansu is a failure here, not a 20-minute
# install) and the broker binary: STOMPEDE_BIN, or the debug build in $CARGO_TARGET_DIR.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"

fail() { echo "local-cluster-test: FAILED: $*" >&2; exit 1; }
TANSU_BIN="${TANSU_BIN:-$STOMPEDE_CACHE/tansu/bin/tansu}"
[ -x "$TANSU_BIN" ] || fail "no Tansu at $TANSU_BIN: run scripts/install-tansu.sh"
if [ -z "${STOMPEDE_BIN:-}" ]; then
  require_cargo
  (cd "$REPO" && cargo build --locked -q -p stompede --bin stompede)
  STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede"
fi
export TANSU_BIN STOMPEDE_BIN
LOCAL_CLUSTER_DIR="$(mktemp -d "${TMPDIR:-/tmp}/stompede-local-cluster-test.XXXXXX")"
export LOCAL_CLUSTER_DIR
CLUSTER="$REPO/deploy/local-cluster.sh"

cleanup() {
  local rc=$?
  "$CLUSTER" stop >/dev/null 2>&1 || true
  if [ "$rc" -ne 0 ]; then
    for log in "$LOCAL_CLUSTER_DIR"/tansu/tansu.log "$LOCAL_CLUSTER_DIR"/node-*/node.log; do
      [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
    done
  fi
  rm -rf "$LOCAL_CLUSTER_DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
out="$("$CLUSTER" start)"
echo "$out"
echo "local-cluster-test: started in $((SECONDS - started))s"
[ "$(grep -c . <<<"$out")" -eq 3 ] || fail "start should print exactly 3 lines"
pattern='^node ([1-3]) pid=([0-9]+) tcp://127\.0\.0\.1:([0-9]+) ws://127\.0\.0\.1:([0-9]+)/ws$'
tcp_ports=() pids=()
while read -r line; do
  [[ "$line" =~ $pattern ]] || fail "line not in the documented form: $line"
  pids+=("${BASH_REMATCH[2]}")
  tcp_ports+=("${BASH_REMATCH[3]}")
done <<<"$out"
"$CLUSTER" status || fail "status reports a node not ready"

# Subscribers on nodes 2 and 3, a SEND on node 1: both must get it (raw STOMP 1.2 over TCP).
python3 - "${tcp_ports[@]}" <<'PY'
import socket, sys, time
ports = [int(p) for p in sys.argv[1:]]

def frame(sock, deadline):
    buf = b""
    while b"\0" not in buf:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed, got {buf!r}")
        buf += chunk
    return buf.split(b"\0", 1)[0].lstrip(b"\n").decode()

def connect(port, user):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"CONNECT\naccept-version:1.2\nhost:local\nlogin:{user}\n\n\0".encode())
    reply = frame(s, time.monotonic() + 10)
    assert reply.startswith("CONNECTED"), reply
    return s

subs = []
for i, port in enumerate(ports[1:], start=2):
    s = connect(port, f"sub{i}")
    s.sendall(b"SUBSCRIBE\nid:1\ndestination:/topic/local.cluster\nreceipt:r1\n\n\0")
    reply = frame(s, time.monotonic() + 10)
    assert reply.startswith("RECEIPT"), reply
    subs.append((i, s))
pub = connect(ports[0], "pub")
# Kafka consumers may still be joining: resend until every subscriber has a copy (bounded).
body = "across the cluster"
got = {}
deadline = time.monotonic() + 30
while len(got) < len(subs) and time.monotonic() < deadline:
    pub.sendall(f"SEND\ndestination:/topic/local.cluster\n\n{body}\0".encode())
    for i, s in subs:
        if i in got:
            continue
        try:
            msg = frame(s, time.monotonic() + 1)
        except (socket.timeout, TimeoutError):
            continue
        assert msg.startswith("MESSAGE") and msg.endswith("\n\n" + body), msg
        got[i] = msg
assert len(got) == len(subs), f"only nodes {sorted(got)} received the message sent on node 1"
print(f"local-cluster-test: a SEND on node 1 reached subscribers on nodes {sorted(got)}")
PY

"$CLUSTER" stop
# A stopped process may linger as a zombie until its new parent reaps it: that is stopped.
for pid in "${pids[@]}"; do
  state="$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null || true)"
  [ -z "$state" ] || [ "$state" = Z ] || fail "pid $pid still running after stop (state $state)"
done
[ ! -e "$LOCAL_CLUSTER_DIR/pids" ] || fail "stop left the pid file"
python3 - "${tcp_ports[@]}" <<'PY' || fail "ports still in use after stop"
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p))); s.close()
PY
echo "local-cluster-test: ok (start, status, a message across nodes, stop)"
