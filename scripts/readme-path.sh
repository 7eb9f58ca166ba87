#!/usr/bin/env bash
# Follows the README's newcomer path on a clean checkout: clones the
# repository's HEAD into a temporary directory, runs the README's first
# command (scripts/start.sh, default ports) there, then runs the README's
# stomp.py snippet ("Five minutes with Stompede", step 3) and checks the
# example chat page is served where start.sh says, and the
# message came back, checks the status page and health endpoint it
# announces, and stops the broker with Ctrl-C (SIGINT), which must exit
# cleanly. Fails loudly if any step does not work as the README says.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO"

python="$STOMPEDE_CACHE/venv/bin/python"
[ -x "$python" ] || { echo "missing $python: run scripts/install-test-deps.sh" >&2; exit 1; }

for port in 61613 15674 15692; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use; the README's defaults need it free" >&2
    exit 1
  fi
done

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

git clone --quiet "$REPO" "$work/stompede"
cd "$work/stompede"

# The README's first command, as written.
scripts/start.sh >"$work/start.out" 2>&1 &
pid=$!

deadline=$((SECONDS + 900))
until (exec 3<>/dev/tcp/127.0.0.1/61613) 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "scripts/start.sh exited before the broker listened:" >&2
    tail -40 "$work/start.out" >&2
    exit 1
  fi
  if [ $SECONDS -ge $deadline ]; then
    echo "the broker did not listen on 61613 in time" >&2
    exit 1
  fi
  sleep 0.5
done

grep -q "http://127.0.0.1:15692/" "$work/start.out" || {
  echo "scripts/start.sh did not print where to point a browser" >&2
  exit 1
}

# The README's stomp.py snippet, extracted from the README itself.
snippet=$(awk '/^   ```sh$/{grab=1; next} grab && /^   ```$/{exit} grab' README.md | sed 's/^   //')
echo "$snippet" | grep -q "stomp.Connection" || { echo "README snippet not found" >&2; exit 1; }
output=$(PATH="$STOMPEDE_CACHE/venv/bin:$PATH" bash -c "$snippet" 2>&1)
echo "$output"
echo "$output" | grep -q "hi from stomp.py" || {
  echo "the README's stomp.py snippet did not receive its message" >&2
  exit 1
}

python3 - <<'PY'
import urllib.request
for base, path, needle in [
    ("http://127.0.0.1:15692", "/healthz", ""),
    ("http://127.0.0.1:15692", "/", "<html"),
    ("http://127.0.0.1:15692", "/metrics", "stompede_"),
    ("http://127.0.0.1:15674", "/", "rx-stomp"),
]:
    body = urllib.request.urlopen(base + path, timeout=5).read().decode()
    assert needle in body, (base + path, body[:200])
print("chat page, status page, /healthz and /metrics answer")
PY

kill -INT "$pid"
status=0
wait "$pid" || status=$?
pid=""
if [ "$status" -ne 0 ]; then
  echo "the broker exited with status $status after Ctrl-C" >&2
  tail -20 "$work/start.out" >&2
  exit 1
fi
echo "README path OK: start, stomp.py round trip, status page, clean stop"
