"""Shared helpers for the stomp.py client suite.

* ``Broker``: either a freshly started ``stompede`` binary on free loopback ports, or an
  external broker named by ``STOMP_TCP_URL`` (for example ``tcp://127.0.0.1:61613``).
* ``Client``: a stomp.py connection plus a listener that records every frame, with
  bounded waits on conditions (never a bare sleep used as an assertion).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import stomp

#: Default deadline for anything we wait for, in seconds.
DEFAULT_TIMEOUT = float(os.environ.get("STOMP_TEST_TIMEOUT", "10"))
#: How long a "nothing more arrives" check watches, in seconds.
QUIET_PERIOD = float(os.environ.get("STOMP_TEST_QUIET", "0.5"))
#: Deadline for the broker's ports to accept connections after start.
STARTUP_DEADLINE = 20.0


def unique(prefix: str = "t") -> str:
    """A destination-safe unique name (letters, digits and '-' only, no dots)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], object], timeout: float = DEFAULT_TIMEOUT,
               what: str = "condition", interval: float = 0.02):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# Broker process management
# --------------------------------------------------------------------------------------

def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports: bind port 0 for each (all at once), then release."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def default_binary() -> Path:
    env = os.environ.get("STOMPEDE_BIN")
    if env:
        return Path(env)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/stompede/target")
    return Path(target) / "debug" / "stompede"


@dataclass
class Broker:
    host: str
    port: int
    vhost: str = "/"
    external: bool = False
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return "(no broker log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGKILL it when its parent dies."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # not Linux, or no libc: the fixture teardown still stops it
        pass


def parse_tcp_url(url: str) -> tuple[str, int]:
    if "://" not in url:
        url = "tcp://" + url
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"STOMP_TCP_URL must look like tcp://host:port, got {url!r}")
    return parsed.hostname, parsed.port


def start_broker() -> Broker:
    """Start stompede (or describe the external broker) and wait until it accepts TCP."""
    vhost = os.environ.get("STOMP_VHOST", "/")
    external = os.environ.get("STOMP_TCP_URL")
    if external:
        host, port = parse_tcp_url(external)
        wait_until(lambda: port_accepts(host, port), STARTUP_DEADLINE,
                   f"external broker at {host}:{port} to accept connections")
        return Broker(host=host, port=port, vhost=vhost, external=True)

    binary = default_binary()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise RuntimeError(
            f"stompede binary not found at {binary}: build it with `cargo build -p stompede` "
            "or set STOMPEDE_BIN (or STOMP_TCP_URL for an external broker)")

    log_dir = Path(os.environ.get("STOMPEDE_LOG_DIR") or tempfile.mkdtemp(prefix="stompede-py-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    last_error = None
    for attempt in range(3):  # a freed port can be taken by someone else: retry on early exit
        tcp_port, ws_port = free_ports(2)
        log_path = log_dir / f"broker-python-{os.getpid()}-{attempt}.log"
        log_file = open(log_path, "wb")
        env = dict(os.environ)
        # Same process group as pytest (so a `timeout` or Ctrl-C that hits the group also
        # reaches the broker), plus a parent-death signal in case pytest itself is killed.
        proc = subprocess.Popen(
            [str(binary), "--tcp-listen", f"127.0.0.1:{tcp_port}",
             "--ws-listen", f"127.0.0.1:{ws_port}", "--memory-store", "--admin-listen="],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env=env, preexec_fn=_die_with_parent)
        broker = Broker(host="127.0.0.1", port=tcp_port, vhost=vhost, process=proc,
                        log_path=log_path, _log_file=log_file)
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if port_accepts("127.0.0.1", tcp_port) and port_accepts("127.0.0.1", ws_port):
                return broker
            time.sleep(0.05)
        code = proc.poll()
        broker.stop()
        last_error = (f"stompede ({binary}) did not accept connections on 127.0.0.1:{tcp_port} "
                      f"within {STARTUP_DEADLINE:.0f}s (exit code {code}); log {log_path}:\n"
                      f"{broker.log_tail()}")
        if code is None:
            break  # it hung rather than failing to bind: retrying will not help
    raise RuntimeError(last_error)


# --------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------

class Recorder(stomp.ConnectionListener):
    """Records every frame the broker sends to one connection."""

    def __init__(self):
        self.cond = threading.Condition()
        self.frames: list = []
        self.heartbeats = 0
        self.disconnected = False

    def _add(self, frame):
        with self.cond:
            self.frames.append(frame)
            self.cond.notify_all()

    on_connected = _add
    on_message = _add
    on_receipt = _add
    on_error = _add

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats += 1
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def snapshot(self, cmd: str | None = None) -> list:
        with self.cond:
            return [f for f in self.frames if cmd is None or f.cmd == cmd]


_CONNECTION_CLASSES = {
    "1.0": stomp.Connection10,
    "1.1": stomp.Connection11,
    "1.2": stomp.Connection12,
}


class Client:
    """One STOMP connection over TCP driven by stomp.py."""

    def __init__(self, broker: Broker, version: str = "1.2", login: str | None = None,
                 passcode: str | None = None, heartbeats=(0, 0), binary: bool = False,
                 with_connect_command: bool = False, timeout: float = DEFAULT_TIMEOUT):
        self.version = version
        cls = _CONNECTION_CLASSES[version]
        kwargs = dict(auto_decode=not binary, reconnect_attempts_max=1)
        if version != "1.0":
            kwargs.update(heartbeats=heartbeats, vhost=broker.vhost)
        self.conn = cls([(broker.host, broker.port)], **kwargs)
        self.rec = Recorder()
        self.conn.set_listener("recorder", self.rec)
        self._sub_seq = 0
        connect_kwargs = {}
        if version != "1.0":
            connect_kwargs["with_connect_command"] = with_connect_command
        self.conn.connect(login, passcode, wait=False, **connect_kwargs)
        frame = self.wait_frame(lambda f: f.cmd in ("CONNECTED", "ERROR"), timeout,
                                "CONNECTED frame")
        if frame.cmd == "ERROR":
            raise AssertionError(f"broker refused CONNECT: {frame.headers} {frame.body!r}")
        self.connected_frame = frame

    # ---- waiting -------------------------------------------------------------------
    def wait_frame(self, predicate, timeout: float = DEFAULT_TIMEOUT, what: str = "frame"):
        deadline = time.monotonic() + timeout
        with self.rec.cond:
            while True:
                for f in self.rec.frames:
                    if predicate(f):
                        return f
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(f.cmd, dict(f.headers)) for f in self.rec.frames][-10:]
                    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; "
                                         f"last frames seen: {seen}")
                self.rec.cond.wait(remaining)

    def wait_messages(self, count: int, predicate=lambda f: True,
                      timeout: float = DEFAULT_TIMEOUT, what: str | None = None) -> list:
        """Wait until at least ``count`` MESSAGE frames matching ``predicate`` arrived."""
        deadline = time.monotonic() + timeout
        with self.rec.cond:
            while True:
                got = [f for f in self.rec.frames if f.cmd == "MESSAGE" and predicate(f)]
                if len(got) >= count:
                    return got
                errors = [f for f in self.rec.frames if f.cmd == "ERROR"]
                if errors:
                    raise AssertionError(f"ERROR frame while waiting for messages: "
                                         f"{dict(errors[0].headers)} {errors[0].body!r}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout:.1f}s waiting for {count} "
                        f"{what or 'messages'}; got {len(got)}: "
                        f"{[(dict(f.headers), f.body[:60]) for f in got]}")
                self.rec.cond.wait(remaining)

    def messages(self, predicate=lambda f: True) -> list:
        return [f for f in self.rec.snapshot("MESSAGE") if predicate(f)]

    def assert_quiet(self, predicate, period: float = QUIET_PERIOD, what: str = "message"):
        """Assert that no MESSAGE matching ``predicate`` arrives within ``period`` seconds."""
        deadline = time.monotonic() + period
        with self.rec.cond:
            while True:
                bad = [f for f in self.rec.frames if f.cmd == "MESSAGE" and predicate(f)]
                if bad:
                    raise AssertionError(f"unexpected {what}: "
                                         f"{[(dict(f.headers), f.body) for f in bad]}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.rec.cond.wait(remaining)

    def wait_receipt(self, receipt_id: str, timeout: float = DEFAULT_TIMEOUT):
        return self.wait_frame(
            lambda f: f.cmd == "ERROR" or (f.cmd == "RECEIPT"
                                           and f.headers.get("receipt-id") == receipt_id),
            timeout, f"RECEIPT {receipt_id}")

    def expect_receipt(self, receipt_id: str, timeout: float = DEFAULT_TIMEOUT):
        frame = self.wait_receipt(receipt_id, timeout)
        assert frame.cmd == "RECEIPT", f"got ERROR instead of receipt: {frame.headers} {frame.body!r}"
        return frame

    # ---- commands ------------------------------------------------------------------
    def subscribe(self, destination: str, ack: str = "auto", headers=None,
                  sub_id: str | None = None, receipt: bool = True) -> str:
        """Subscribe and (by default) wait for the broker's receipt, so the subscription is live."""
        self._sub_seq += 1
        sub_id = sub_id or f"sub-{self._sub_seq}"
        headers = dict(headers or {})
        rid = None
        if receipt:
            rid = f"subscribe-{uuid.uuid4().hex}"
            headers["receipt"] = rid
        if self.version == "1.0":
            self.conn.subscribe(destination, id=sub_id, ack=ack, headers=headers)
        else:
            self.conn.subscribe(destination, sub_id, ack=ack, headers=headers)
        if rid:
            self.expect_receipt(rid)
        return sub_id

    def unsubscribe(self, sub_id: str, receipt: bool = True):
        headers = {}
        rid = None
        if receipt:
            rid = f"unsubscribe-{uuid.uuid4().hex}"
            headers["receipt"] = rid
        self.conn.unsubscribe(id=sub_id, headers=headers)
        if rid:
            self.expect_receipt(rid)

    def send(self, destination: str, body, headers=None, receipt: bool = False, **kw):
        headers = dict(headers or {})
        rid = None
        if receipt:
            rid = f"send-{uuid.uuid4().hex}"
            headers["receipt"] = rid
        self.conn.send(destination, body, headers=headers, **kw)
        if rid:
            self.expect_receipt(rid)

    def ack(self, frame, transaction=None, receipt=None):
        self._ack_or_nack(self.conn.ack, frame, transaction, receipt)

    def nack(self, frame, transaction=None, receipt=None):
        self._ack_or_nack(self.conn.nack, frame, transaction, receipt)

    def _ack_or_nack(self, fn, frame, transaction, receipt):
        h = frame.headers
        if self.version == "1.2":
            fn(h["ack"], transaction=transaction, receipt=receipt)
        elif self.version == "1.1":
            fn(h["message-id"], h["subscription"], transaction=transaction, receipt=receipt)
        else:
            fn(h["message-id"], transaction=transaction, receipt=receipt)
        if receipt:
            self.expect_receipt(receipt)

    def close(self, timeout: float = DEFAULT_TIMEOUT):
        """DISCONNECT with a receipt, wait (bounded) for the socket to close."""
        try:
            if self.conn.is_connected():
                rid = f"disconnect-{uuid.uuid4().hex}"
                self.conn.set_receipt(rid, "DISCONNECT")
                self.conn.send_frame("DISCONNECT", {"receipt": rid})
                deadline = time.monotonic() + timeout
                with self.rec.cond:
                    while not self.rec.disconnected and time.monotonic() < deadline:
                        self.rec.cond.wait(deadline - time.monotonic())
        finally:
            if not self.rec.disconnected:
                self.conn.transport.disconnect_socket()

    def drop(self):
        """Close the TCP socket abruptly, without a DISCONNECT frame."""
        self.conn.transport.disconnect_socket()
        wait_until(lambda: self.rec.disconnected, what="socket close")
