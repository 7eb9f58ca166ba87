#!/usr/bin/env bash
# Builds Stompede and starts it with its embedded defaults:
# STOMP over TCP on 127.0.0.1:61613, STOMP over WebSocket on
# ws://127.0.0.1:15674/ws, the example chat page on
# http://127.0.0.1:15674/. Extra arguments go to the broker
# (try `scripts/start.sh --help`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"
require_cargo
echo "Building stompede (release; the first build takes a few minutes)..." >&2
cargo build --release --locked -p stompede >&2
cat >&2 <<'HELLO'

Stompede is starting:
  STOMP over TCP        127.0.0.1:61613   (stomp.py, the `stomp` CLI, any STOMP client)
  STOMP over WebSocket  ws://127.0.0.1:15674/ws   (@stomp/stompjs, @stomp/rx-stomp)
  Example chat page     http://127.0.0.1:15674/   (open it in two browser windows)
  Status page, metrics  http://127.0.0.1:15692/   (/metrics, /healthz, /readyz, /api/...)
  Stored messages       ./stompede-data
Try it from another terminal (after scripts/install-test-deps.sh):
  ~/.cache/stompede/venv/bin/stomp -H 127.0.0.1 -P 61613      (then: subscribe /topic/hello)
  ~/.cache/stompede/venv/bin/python -c 'import stomp; c = stomp.Connection([("127.0.0.1", 61613)]); c.connect(wait=True); c.send("/topic/hello", "hi from stomp.py"); c.disconnect()'
Press Ctrl-C to stop it.

HELLO
exec "$CARGO_TARGET_DIR/release/stompede" --static-dir "$REPO/examples/web-chat" "$@"
