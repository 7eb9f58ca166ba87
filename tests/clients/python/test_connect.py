"""CONNECT / STOMP negotiation with each protocol version, then a round trip on it."""

import pytest
import stomp

from stomp_harness import DEFAULT_TIMEOUT, Recorder, unique


@pytest.mark.parametrize(
    "version,with_connect_command",
    [("1.0", True), ("1.1", False), ("1.1", True), ("1.2", False), ("1.2", True)],
    ids=["1.0-CONNECT", "1.1-STOMP", "1.1-CONNECT", "1.2-STOMP", "1.2-CONNECT"],
)
def test_connect_negotiates_version_and_round_trips(connect, version, with_connect_command):
    c = connect(version, with_connect_command=with_connect_command)
    connected = c.connected_frame
    assert connected.cmd == "CONNECTED"
    if version == "1.0":
        # A 1.0 client sends no accept-version; the server answers 1.0 (header optional).
        assert connected.headers.get("version", "1.0") == "1.0", connected.headers
    else:
        assert connected.headers.get("version") == version, connected.headers
        # The client offered 0,0, so no heart-beats flow whatever the broker offers; the
        # header, when present, must still be well formed.
        hb = connected.headers.get("heart-beat", "0,0")
        assert all(x.strip().isdigit() for x in hb.split(",")) and hb.count(",") == 1, hb

    dest = f"/topic/{unique('connect')}"
    sub = c.subscribe(dest)
    c.send(dest, f"hello over {version}", headers={"x-probe": "yes"})
    (msg,) = c.wait_messages(1)
    assert msg.body == f"hello over {version}"
    assert msg.headers["destination"] == dest
    assert msg.headers["x-probe"] == "yes"
    assert msg.headers.get("message-id")
    if version != "1.0":
        assert msg.headers["subscription"] == sub


@pytest.mark.parametrize("offer,expected", [
    ("1.0,1.1,1.2", "1.2"),
    ("1.1,1.0", "1.1"),
    (None, "1.0"),  # a pre-1.1 client sends no accept-version at all
], ids=["offer-all", "offer-1.1", "no-accept-version"])
def test_highest_common_version_is_chosen(broker, offer, expected):
    """stomp.py offers only its own version, so the CONNECT is written by hand through its
    transport to check the negotiation rule: the highest version both sides support."""
    rec = Recorder()
    conn = stomp.Connection12([(broker.host, broker.port)], reconnect_attempts_max=1)
    conn.set_listener("r", rec)
    conn.transport.start()
    try:
        headers = {"host": broker.vhost}
        if offer is not None:
            headers["accept-version"] = offer
        conn.send_frame("CONNECT", headers)
        with rec.cond:
            assert rec.cond.wait_for(lambda: rec.frames, timeout=DEFAULT_TIMEOUT), "no answer"
        first = rec.frames[0]
        assert first.cmd == "CONNECTED", (first.cmd, first.headers, first.body)
        assert first.headers.get("version", "1.0") == expected, first.headers
    finally:
        conn.transport.disconnect_socket()
