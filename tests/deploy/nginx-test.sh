#!/usr/bin/env bash
# The shipped nginx configs (deploy/nginx/) in front of two real Stompede nodes:
#   1. renders a test copy of each config: the nodes' loopback ports for the example upstream
#      addresses, free loopback ports for 80/443/61614, a self-signed certificate for the
#      example one; every substitution is checked, so a changed config fails here loudly;
#   2. `nginx -t`, then nginx in the foreground with its own prefix, pid and logs;
#   3. two nodes (dev mode on loopback, memory store), and real @stomp/stompjs clients over
#      wss:// through nginx: round trips, an idle spell on heart-beats only, round trips again,
#      then raw STOMP over TLS through the stream {} proxy;
#   4. each node's /metrics must show WebSocket connections, so both upstreams served.
# Everything it starts is stopped on exit (and the ports checked free).
#
# Environment: STOMPEDE_BIN (default: build the debug binary in $CARGO_TARGET_DIR).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"

NGINX=/usr/sbin/nginx
STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
NODE_DIR="$REPO/tests/deploy"
CONNECTIONS=4

fail() { echo "nginx-test: FAILED: $*" >&2; exit 1; }
[ -x "$NGINX" ] || fail "$NGINX missing: run scripts/install-deploy-deps.sh"
[ -f "$STREAM_MODULE" ] || fail "$STREAM_MODULE missing: run scripts/install-deploy-deps.sh"
[ -f "$NODE_DIR/node_modules/@stomp/stompjs/package.json" ] \
  || fail "tests/deploy/node_modules missing: run scripts/install-deploy-deps.sh"
for tool in openssl curl node python3; do
  command -v "$tool" >/dev/null || fail "$tool not found: run scripts/install-deploy-deps.sh"
done

if [ -z "${STOMPEDE_BIN:-}" ]; then
  require_cargo
  (cd "$REPO" && cargo build --locked -q -p stompede --bin stompede)
  STOMPEDE_BIN="$CARGO_TARGET_DIR/debug/stompede"
fi
[ -x "$STOMPEDE_BIN" ] || fail "no broker binary at $STOMPEDE_BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/stompede-nginx-test.XXXXXX")"
PIDS=()
PORTS=()
cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$rc" -ne 0 ] && [ -d "$WORK" ]; then
    echo "--- nginx error log:" >&2; tail -n 30 "$WORK/logs/error.log" 2>/dev/null >&2 || true
    for log in "$WORK"/node*.log; do
      [ -f "$log" ] && { echo "--- $log:" >&2; tail -n 20 "$log" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports: 2 nodes x (tcp, ws, admin) + nginx http, https, stream.
read -r -a PORTS <<<"$(python3 - <<'PY'
import socket
socks = []
for _ in range(9):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
N1_TCP=${PORTS[0]} N1_WS=${PORTS[1]} N1_ADMIN=${PORTS[2]}
N2_TCP=${PORTS[3]} N2_WS=${PORTS[4]} N2_ADMIN=${PORTS[5]}
HTTP_PORT=${PORTS[6]} HTTPS_PORT=${PORTS[7]} STREAM_PORT=${PORTS[8]}

# ---- certificate: a throwaway CA-less self-signed cert for the example name and 127.0.0.1.
mkdir -p "$WORK/tls" "$WORK/conf" "$WORK/logs" "$WORK/tmp"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=stompede.example.com" \
  -addext "subjectAltName=DNS:stompede.example.com,IP:127.0.0.1" \
  -keyout "$WORK/tls/privkey.pem" -out "$WORK/tls/fullchain.pem" 2>/dev/null

# ---- test copies of the shipped configs.
# render SRC DEST UPSTREAM_PORT1 UPSTREAM_PORT2 (LISTEN_FROM LISTEN_TO)...
render() {
  local src="$1" dest="$2" up1="$3" up2="$4"
  shift 4
  local script=(
    # the example nodes -> our two nodes (the third example node is dropped)
    -e "s/server 192\.0\.2\.11:[0-9]*/server 127.0.0.1:$up1/"
    -e "s/server 192\.0\.2\.12:[0-9]*/server 127.0.0.1:$up2/"
    -e '/server 192\.0\.2\.13:/d'
    # no IPv6 listeners: the test machine may have no ::1
    -e '/listen \[::\]:/d'
    -e "s#/etc/nginx/tls/stompede.example.com/#$WORK/tls/#"
  )
  while [ "$#" -gt 0 ]; do
    script+=(-e "s/listen $1\([ ;]\)/listen 127.0.0.1:$2\1/")
    shift 2
  done
  sed "${script[@]}" "$src" >"$dest"
  # Every example address and path must be gone (comments aside), else the test would use them.
  if sed 's/#.*//' "$dest" | grep -nE '192\.0\.2\.|/etc/nginx/|listen (80|443|61614)[ ;]'; then
    fail "$(basename "$src"): the lines above were not rewritten for the test (config changed?)"
  fi
  [ "$(grep -c "server 127.0.0.1:" "$dest")" -eq 2 ] || fail "$(basename "$src"): expected 2 upstream nodes"
}
render "$REPO/deploy/nginx/stompede.conf" "$WORK/conf/stompede.conf" "$N1_WS" "$N2_WS" \
  80 "$HTTP_PORT" 443 "$HTTPS_PORT"
render "$REPO/deploy/nginx/stompede-stream.conf" "$WORK/conf/stompede-stream.conf" "$N1_TCP" "$N2_TCP" \
  61614 "$STREAM_PORT"

# A minimal main config around them: everything under $WORK, nothing from /etc/nginx.
cat >"$WORK/conf/nginx.conf" <<EOF
load_module $STREAM_MODULE;
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log info;
events { worker_connections 256; }
http {
    access_log $WORK/logs/access.log;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path $WORK/tmp/proxy;
    fastcgi_temp_path $WORK/tmp/fastcgi;
    uwsgi_temp_path $WORK/tmp/uwsgi;
    scgi_temp_path $WORK/tmp/scgi;
    include $WORK/conf/stompede.conf;
}
include $WORK/conf/stompede-stream.conf;
EOF
NGINX_ARGS=(-p "$WORK" -e "$WORK/logs/error.log" -c "$WORK/conf/nginx.conf")
echo "nginx-test: nginx -t"
"$NGINX" "${NGINX_ARGS[@]}" -t

# ---- two nodes.
start_node() {
  local n="$1" tcp="$2" ws="$3" admin="$4"
  cat >"$WORK/node$n.toml" <<EOF
[listeners]
tcp = "127.0.0.1:$tcp"
websocket = "127.0.0.1:$ws"
admin = "127.0.0.1:$admin"
[auth]
mode = "dev"
[store]
kind = "memory"
[log]
level = "warn"
EOF
  "$STOMPEDE_BIN" --config "$WORK/node$n.toml" >"$WORK/node$n.log" 2>&1 &
  PIDS+=("$!")
}
start_node 1 "$N1_TCP" "$N1_WS" "$N1_ADMIN"
start_node 2 "$N2_TCP" "$N2_WS" "$N2_ADMIN"
"$NGINX" "${NGINX_ARGS[@]}" -g 'daemon off;' &
PIDS+=("$!")

wait_http() { # URL: until it answers 200, for at most 20 s
  local i
  for i in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  fail "$1 did not answer within 20 s"
}
wait_http "http://127.0.0.1:$N1_ADMIN/healthz"
wait_http "http://127.0.0.1:$N2_ADMIN/healthz"
# nginx is up once the redirect server answers (a 301, so no -f).
for i in $(seq 1 50); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/")" = 301 ] && break
  [ "$i" -eq 50 ] && fail "nginx did not answer on 127.0.0.1:$HTTP_PORT"
  sleep 0.2
done
echo "nginx-test: nodes on ws :$N1_WS and :$N2_WS, nginx on https :$HTTPS_PORT and stream :$STREAM_PORT"

# Plain HTTPS through nginx: anything but /ws is refused at the proxy.
code="$(curl -s --cacert "$WORK/tls/fullchain.pem" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$HTTPS_PORT/")"
[ "$code" = 404 ] || fail "https://.../ should be 404 at nginx, got $code"

# ---- the real client.
NODE_PATH="$NODE_DIR/node_modules" node "$NODE_DIR/nginx-client.cjs" \
  "wss://127.0.0.1:$HTTPS_PORT/ws" "$WORK/tls/fullchain.pem" "$CONNECTIONS" "127.0.0.1:$STREAM_PORT"

# ---- both upstreams served: WebSocket connections accepted on each node.
metric() { # ADMIN_PORT TRANSPORT: stompede_connections_accepted_total for that transport
  curl -fsS "http://127.0.0.1:$1/metrics" \
    | awk -v t="$2" '$1 == "stompede_connections_accepted_total{transport=\"" t "\"}" { print $2 }'
}
ws1="$(metric "$N1_ADMIN" ws)" ws2="$(metric "$N2_ADMIN" ws)"
tcp1="$(metric "$N1_ADMIN" tcp)" tcp2="$(metric "$N2_ADMIN" tcp)"
echo "nginx-test: WebSocket connections accepted: node 1 ${ws1:-none}, node 2 ${ws2:-none};" \
  "TCP (stream proxy): node 1 ${tcp1:-none}, node 2 ${tcp2:-none}"
if [ "${ws1:-0}" -lt 1 ] || [ "${ws2:-0}" -lt 1 ]; then
  fail "both nodes should have served WebSocket clients"
fi
[ "$((${ws1:-0} + ${ws2:-0}))" -eq "$CONNECTIONS" ] || fail "expected $CONNECTIONS WebSocket connections in all"
[ "$((${tcp1:-0} + ${tcp2:-0}))" -eq 1 ] || fail "expected the stream proxy's one TCP connection"
grep -q ' 101 ' "$WORK/logs/access.log" || fail "nginx logged no 101 Switching Protocols"

# ---- stop everything and check the ports are free again.
for pid in "${PIDS[@]}"; do kill -TERM "$pid"; done
for pid in "${PIDS[@]}"; do wait "$pid" || true; done
PIDS=()
python3 - "${PORTS[@]}" <<'PY' || fail "ports still in use after stopping"
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", int(p))); s.close()
PY
echo "nginx-test: ok (nginx -t; $CONNECTIONS stompjs clients over wss through nginx to 2 nodes; STOMP over TLS via stream)"
