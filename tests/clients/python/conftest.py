"""pytest fixtures: one broker per session (stompede on free ports, or STOMP_TCP_URL)."""

import atexit
import os
import signal

import pytest

from stomp_harness import Client, start_broker


def _terminate_cleanly(signum, frame):
    # SIGTERM (e.g. from `timeout`) would otherwise end pytest without running finalizers;
    # KeyboardInterrupt makes pytest stop the session and tear its fixtures down.
    raise KeyboardInterrupt(f"signal {signum}")


signal.signal(signal.SIGTERM, _terminate_cleanly)


@pytest.fixture(scope="session")
def broker():
    b = start_broker()
    atexit.register(b.stop)  # also covers an interrupted session
    try:
        yield b
    finally:
        b.stop()
        if b.log_path is not None:
            print(f"\nstompede log: {b.log_path}")


@pytest.fixture
def connect(broker):
    """Factory: connect(version="1.2", **kw) -> Client; every client is closed after the test."""
    clients = []

    def factory(version="1.2", **kw):
        c = Client(broker, version=version, **kw)
        clients.append(c)
        return c

    yield factory
    for c in clients:
        try:
            c.close(timeout=3)
        except Exception as exc:  # a failed close must not hide the test's own result
            print(f"closing client failed: {exc!r}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test counts as a failure: this suite never passes by skipping."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("STOMP_ALLOW_SKIP") != "1":
        report.outcome = "failed"
        report.longrepr = f"test was skipped, which this suite treats as a failure: {report.longrepr}"
