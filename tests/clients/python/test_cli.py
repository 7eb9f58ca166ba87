"""stomp.py's own command-line client, driven non-interactively through a subprocess."""

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from stomp_harness import DEFAULT_TIMEOUT, unique

CLI_TIMEOUT = 30


def cli_env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def stomp_script() -> str:
    """The `stomp` console script installed next to this interpreter by the stomp.py package."""
    candidate = Path(sys.executable).parent / "stomp"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("stomp")
    assert found, "the `stomp` command installed by stomp.py was not found"
    return found


def test_cli_sends_a_message_a_listener_receives(broker, connect):
    dest = f"/queue/{unique('cli-send')}"
    listener = connect()
    listener.subscribe(dest)
    commands = f"send {dest} hello from the stomp.py cli\nquit\n"
    proc = subprocess.run(
        [sys.executable, "-m", "stomp", "-V", "-H", broker.host, "-P", str(broker.port)],
        input=commands, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=cli_env())
    assert proc.returncode == 0, f"stomp CLI failed: {proc.stdout}\n{proc.stderr}"
    assert "CONNECTED" in proc.stdout, f"CLI did not connect: {proc.stdout}\n{proc.stderr}"
    (m,) = listener.wait_messages(1)
    assert m.body == "hello from the stomp.py cli"
    assert m.headers["destination"] == dest


def test_cli_listens_and_prints_a_received_message(broker, connect):
    dest = f"/queue/{unique('cli-listen')}"
    proc = subprocess.Popen(
        [stomp_script(), "-H", broker.host, "-P", str(broker.port), "-L", dest],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=cli_env(), start_new_session=True)
    lines: "queue.Queue[str]" = queue.Queue()
    seen = []

    def pump():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()

    def wait_line(predicate, what):
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"CLI never printed {what}; output so far: {seen}")

    try:
        wait_line(lambda l: l.startswith("Subscribing to"), "its subscription")
        sender = connect()
        # A queue keeps the message even if the CLI's SUBSCRIBE is still in flight.
        sender.send(dest, "printed-by-cli-42", receipt=True)
        wait_line(lambda l: "printed-by-cli-42" in l, "the message body")
        assert any(l.startswith("message-id:") for l in seen), seen
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
