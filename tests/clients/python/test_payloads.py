"""Large binary bodies with NUL bytes, and heart-beats over TCP."""

import hashlib

from stomp_harness import unique, wait_until

MIB = 1024 * 1024


def binary_body() -> bytes:
    # Every byte value, NULs included, in a pattern that is not periodic per 256 bytes.
    return b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() + b"\x00\x00\xff\x00"
                    for i in range(MIB // 36 + 1))[:MIB]


def test_one_mib_binary_body_with_nuls_round_trips(connect):
    body = binary_body()
    assert len(body) == MIB and body.count(b"\x00") > 50_000
    for dest in (f"/topic/{unique('bin')}", f"/queue/{unique('bin')}"):
        receiver, sender = connect(binary=True), connect(binary=True)
        receiver.subscribe(dest)
        sender.send(dest, body, headers={"content-type": "application/octet-stream"},
                    receipt=True)
        (m,) = receiver.wait_messages(1, timeout=30)
        assert isinstance(m.body, bytes)
        assert int(m.headers["content-length"]) == MIB
        assert m.headers["content-type"] == "application/octet-stream"
        assert len(m.body) == MIB
        assert m.body == body, "body corrupted in transit"


def test_utf8_headers_and_escapes_round_trip(connect):
    dest = f"/topic/{unique('utf8')}"
    c = connect()
    c.subscribe(dest)
    value = "colon:newline\nbackslash\\ünïcödé ☃"
    c.send(dest, "ünïcödé body ☃", headers={"x-tricky": value})
    (m,) = c.wait_messages(1)
    assert m.headers["x-tricky"] == value
    assert m.body == "ünïcödé body ☃"


def test_broker_sends_heartbeats_and_keeps_connection(connect):
    c = connect(heartbeats=(500, 500))
    hb = c.connected_frame.headers["heart-beat"]
    sx, sy = (int(x) for x in hb.split(","))
    assert sy > 0, f"client offered heart-beats every 500 ms; broker wants none ({hb})"
    assert sx > 0, f"client asked for heart-beats every 500 ms; broker offers none ({hb})"
    # Negotiated broker -> client interval is max(sx, 500 ms); wait for beats at that rate.
    interval = max(sx, 500) / 1000
    needed = 2 if interval <= 2 else 1
    wait_until(lambda: c.rec.heartbeats >= needed, timeout=needed * interval * 1.5 + 3,
               what=f"{needed} heart-beat(s) from the broker (negotiated every {interval:.1f} s)")
    assert c.conn.is_connected() and not c.rec.disconnected
    dest = f"/topic/{unique('hb')}"
    c.subscribe(dest)
    c.send(dest, "still alive")
    assert c.wait_messages(1)[0].body == "still alive"
