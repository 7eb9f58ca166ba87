#!/usr/bin/env bash
# A Stompede cluster on this machine: Kafka (Tansu, Kafka-compatible, one process with a SQLite
# file) and three broker nodes bridged through it, all on loopback in development mode (the
# CONNECT login is the user name, no passwords; nothing listens beyond 127.0.0.1).
#
#   deploy/local-cluster.sh start    build, start, wait until every node is ready, then print
#                                    one line per node: node N pid=PID tcp://... ws://.../ws
#   deploy/local-cluster.sh status   what runs, and whether each node is ready
#   deploy/local-cluster.sh stop     stop what `start` started (TERM, then KILL after a while)
#
# A message sent to any node reaches subscribers on every node: try two stomp.py CLIs on two
# nodes' TCP ports, or the example chat page at each node's http://127.0.0.1:WSPORT/.
#
# Environment:
#   LOCAL_CLUSTER_DIR  state: configs, logs, stores, pids (default ~/.cache/stompede/local-cluster);
#                      `start` begins from an empty one
#   LOCAL_CLUSTER_NODES  how many nodes (default 3)
#   STOMPEDE_BIN       the broker binary (default: `cargo build --release`, as scripts/start.sh)
#   TANSU_BIN          Tansu (default: the one scripts/install-tansu.sh installs; installed
#                      on first use, which takes 10-25 minutes once)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

# Absolute, without symlinks: `alive` compares it with the processes' working directories.
STATE="$(realpath -m "${LOCAL_CLUSTER_DIR:-$STOMPEDE_CACHE/local-cluster}")"
NODES="${LOCAL_CLUSTER_NODES:-3}"
TANSU_BIN="${TANSU_BIN:-${TANSU_ROOT:-$STOMPEDE_CACHE/tansu}/bin/tansu}"
PIDFILE="$STATE/pids"
READY_TIMEOUT_S=90
STOP_TIMEOUT_S=15   # above the nodes' shutdown grace_ms (5 s) + Kafka client shutdown

say() { echo "local-cluster: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# alive PID: the process runs in our state directory (every process `start` launches has its
# working directory there), so a reused pid is never mistaken for ours.
alive() {
  local cwd
  cwd="$(readlink "/proc/$1/cwd" 2>/dev/null)" || return 1
  [ "$cwd" = "$STATE" ] || [[ "$cwd" == "$STATE"/* ]]
}

free_ports() { # N: N distinct free loopback ports
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

cmd_stop() {
  if [ ! -f "$PIDFILE" ]; then
    say "nothing to stop (no $PIDFILE)"
    return 0
  fi
  # Nodes first (on TERM they drain their sessions, then leave Kafka), Kafka last.
  local kind n pid rest nodes=() tansu=()
  while read -r kind n pid rest; do
    case "$kind" in
      node) nodes+=("$pid") ;;
      tansu) tansu+=("$pid") ;;
    esac
  done <"$PIDFILE"
  terminate nodes "${nodes[@]}"
  terminate tansu "${tansu[@]}"
  rm -f "$PIDFILE"
}

# terminate LABEL PID...: TERM them all, wait, then KILL whatever is left.
terminate() {
  local label="$1" pid live=()
  shift
  for pid in "$@"; do
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      live+=("$pid")
    fi
  done
  [ "${#live[@]}" -gt 0 ] || return 0
  local deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "${live[@]}"; do
    while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if alive "$pid"; then
      say "$label: pid $pid did not stop within ${STOP_TIMEOUT_S}s: KILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  say "stopped $label (pid ${live[*]})"
}

cmd_status() {
  [ -f "$PIDFILE" ] || { say "not running (no $PIDFILE)"; return 1; }
  local kind n pid a b c state rc=0
  while read -r kind n pid a b c; do
    if ! alive "$pid"; then state="NOT RUNNING"; rc=1
    elif [ "$kind" = tansu ]; then state="running"
    elif [ "$(http_code "http://127.0.0.1:$c/readyz")" = 200 ]; then state="ready"
    else state="running, NOT READY"; rc=1
    fi
    if [ "$kind" = tansu ]; then
      echo "kafka (tansu) pid=$pid tcp://127.0.0.1:$a  $state  log: $STATE/tansu/tansu.log"
    else
      echo "node $n pid=$pid tcp://127.0.0.1:$a ws://127.0.0.1:$b/ws admin http://127.0.0.1:$c/  $state  log: $STATE/node-$n/node.log"
    fi
  done <"$PIDFILE"
  return "$rc"
}

cmd_start() {
  if [ -f "$PIDFILE" ]; then
    local kind n pid rest
    while read -r kind n pid rest; do
      alive "$pid" && die "already running ($kind $n pid $pid): deploy/local-cluster.sh stop first"
    done <"$PIDFILE"
  fi
  [[ "$NODES" =~ ^[1-9][0-9]*$ ]] || die "LOCAL_CLUSTER_NODES must be a positive number"
  for tool in python3 curl setsid; do command -v "$tool" >/dev/null || die "$tool not found"; done

  if [ ! -x "$TANSU_BIN" ]; then
    if [ "$TANSU_BIN" != "${TANSU_ROOT:-$STOMPEDE_CACHE/tansu}/bin/tansu" ]; then
      die "no Tansu at $TANSU_BIN"
    fi
    say "Tansu is not installed: scripts/install-tansu.sh (10-25 minutes, once)"
    "$REPO/scripts/install-tansu.sh" >&2
  fi
  if [ -z "${STOMPEDE_BIN:-}" ]; then
    require_cargo
    say "building stompede (release; the first build takes a few minutes)"
    (cd "$REPO" && cargo build --release --locked -q -p stompede --bin stompede) >&2
    STOMPEDE_BIN="$CARGO_TARGET_DIR/release/stompede"
  fi
  [ -x "$STOMPEDE_BIN" ] || die "no broker binary at $STOMPEDE_BIN"

  # Begin from an empty state directory, but never empty a directory this script did not make.
  if [ -d "$STATE" ] && [ -n "$(ls -A "$STATE")" ] && [ ! -f "$STATE/.stompede-local-cluster" ]; then
    die "$STATE exists and was not made by this script: set LOCAL_CLUSTER_DIR elsewhere"
  fi
  rm -rf "$STATE"
  mkdir -p "$STATE/tansu"
  touch "$STATE/.stompede-local-cluster"
  # If anything below fails, stop what already started.
  START_OK=0
  trap '[ "$START_OK" = 1 ] || { say "start failed: stopping what started"; cmd_stop; }' EXIT
  local ports
  read -r -a ports <<<"$(free_ports $((1 + 3 * NODES)))"
  local kafka_port="${ports[0]}"

  # Tansu loads a .env file from its working directory (or a parent): it runs in its own empty
  # directory, with every setting on the command line (which wins over the environment). Its
  # data is one SQLite file there.
  # (The shell changes directory before it starts a process, so the child is in the state
  # directory from its first instant: `alive` depends on it.)
  cd "$STATE/tansu"
  setsid "$TANSU_BIN" broker \
    --cluster-id stompede-local \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine "sqlite://tansu.db" \
    </dev/null >"$STATE/tansu/tansu.log" 2>&1 &
  local tansu_pid=$!
  echo "tansu 0 $tansu_pid $kafka_port" >"$PIDFILE"
  local deadline=$((SECONDS + 30))
  until (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; do
    alive "$tansu_pid" || { tail -n 20 "$STATE/tansu/tansu.log" >&2; die "Tansu exited"; }
    [ "$SECONDS" -lt "$deadline" ] || die "Tansu did not listen on 127.0.0.1:$kafka_port within 30 s"
    sleep 0.2
  done
  say "kafka (tansu) pid=$tansu_pid tcp://127.0.0.1:$kafka_port"

  local i tcp ws admin dir
  for i in $(seq 1 "$NODES"); do
    tcp="${ports[$((3 * i - 2))]}" ws="${ports[$((3 * i - 1))]}" admin="${ports[$((3 * i))]}"
    dir="$STATE/node-$i"
    mkdir -p "$dir"
    cat >"$dir/stompede.toml" <<EOF
# Node $i of the local cluster (written by deploy/local-cluster.sh start).
[listeners]
tcp = "127.0.0.1:$tcp"
websocket = "127.0.0.1:$ws"
admin = "127.0.0.1:$admin"

[websocket]
static_dir = "$REPO/examples/web-chat"

[auth]
# Development mode: loopback only, the CONNECT login is the user, no passwords.
mode = "dev"

[store]
kind = "sled"
path = "$dir/data"

[cluster]
enabled = true
node_id = "node-$i"
bootstrap_servers = "127.0.0.1:$kafka_port"
topic_prefix = "stompede"
partitions = 6
replication_factor = 1
start_degraded = false
EOF
    cd "$dir"
    setsid "$STOMPEDE_BIN" --config "$dir/stompede.toml" </dev/null >"$dir/node.log" 2>&1 &
    echo "node $i $! $tcp $ws $admin" >>"$PIDFILE"
  done

  # Ready means the node serves clients and reaches Kafka.
  local kind n pid a b c
  deadline=$((SECONDS + READY_TIMEOUT_S))
  while read -r kind n pid a b c; do
    [ "$kind" = node ] || continue
    until [ "$(http_code "http://127.0.0.1:$c/readyz")" = 200 ]; do
      if ! alive "$pid"; then
        tail -n 20 "$STATE/node-$n/node.log" >&2
        die "node $n exited (log: $STATE/node-$n/node.log)"
      fi
      [ "$SECONDS" -lt "$deadline" ] || die "node $n not ready within ${READY_TIMEOUT_S}s (log: $STATE/node-$n/node.log)"
      sleep 0.3
    done
  done <"$PIDFILE"
  START_OK=1

  while read -r kind n pid a b c; do
    [ "$kind" = node ] && echo "node $n pid=$pid tcp://127.0.0.1:$a ws://127.0.0.1:$b/ws"
  done <"$PIDFILE"
  say "ready; state, logs and configs in $STATE; deploy/local-cluster.sh status | stop"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 start|status|stop" >&2
    exit 2
    ;;
esac
