"""Topic fan-out, wildcards, and queue semantics (competing consumers, ack modes, prefetch)."""

from stomp_harness import unique, wait_until


def test_topic_fans_out_to_every_subscriber_in_order(connect):
    dest = f"/topic/{unique('fanout')}"
    alice, bob, publisher = connect(), connect(), connect()
    sub_a = alice.subscribe(dest)
    sub_b = bob.subscribe(dest)
    for i in range(5):
        publisher.send(dest, f"m{i}", headers={"x-seq": str(i)})
    for client, sub in ((alice, sub_a), (bob, sub_b)):
        got = client.wait_messages(5)
        assert [m.body for m in got] == [f"m{i}" for i in range(5)]
        assert [m.headers["x-seq"] for m in got] == [str(i) for i in range(5)]
        assert all(m.headers["destination"] == dest for m in got)
        assert all(m.headers["subscription"] == sub for m in got)
        assert len({m.headers["message-id"] for m in got}) == 5, "message-ids must be unique"
    # The publisher has no subscription and must get nothing.
    publisher.assert_quiet(lambda m: True)


def test_topic_does_not_retain_messages_for_late_subscribers(connect):
    dest = f"/topic/{unique('late')}"
    publisher, late = connect(), connect()
    publisher.send(dest, "before", receipt=True)
    late.subscribe(dest)
    publisher.send(dest, "after")
    (first,) = late.wait_messages(1)
    assert first.body == "after", "a topic message published before SUBSCRIBE was delivered"
    late.assert_quiet(lambda m: m.body == "before")


def test_unsubscribe_stops_delivery(connect):
    dest = f"/topic/{unique('unsub')}"
    c, publisher = connect(), connect()
    sub = c.subscribe(dest)
    publisher.send(dest, "one")
    c.wait_messages(1)
    c.unsubscribe(sub)
    publisher.send(dest, "two", receipt=True)
    # A marker on a second, still active subscription proves ordering: "two" would come first.
    marker_dest = f"/topic/{unique('marker')}"
    c.subscribe(marker_dest)
    publisher.send(marker_dest, "marker")
    c.wait_messages(1, lambda m: m.body == "marker")
    assert [m.body for m in c.messages()] == ["one", "marker"]


def test_wildcard_subscriptions(connect):
    root = unique("wild")
    star_dest, hash_dest = f"/topic/{root}.*", f"/topic/{root}.#"
    c, publisher = connect(), connect()
    star = c.subscribe(star_dest)
    hashed = c.subscribe(hash_dest)
    published = [f"{root}.a", f"{root}.a.b", root, f"{root}x.a", f"{root}.b"]
    for d in published:
        publisher.send(f"/topic/{d}", d)
    # The last one matches both, and per-subscription order is publish order.
    c.wait_messages(1, lambda m: m.headers["subscription"] == star and m.body == f"{root}.b")
    c.wait_messages(1, lambda m: m.headers["subscription"] == hashed and m.body == f"{root}.b")
    got_star = [m.body for m in c.messages(lambda m: m.headers["subscription"] == star)]
    got_hash = [m.body for m in c.messages(lambda m: m.headers["subscription"] == hashed)]
    assert got_star == [f"{root}.a", f"{root}.b"]  # '*' is exactly one segment
    assert got_hash == [f"{root}.a", f"{root}.a.b", root, f"{root}.b"]  # '#' is zero or more
    for m in c.messages():
        # MESSAGE carries the concrete destination, not the pattern.
        assert m.headers["destination"] == f"/topic/{m.body}"


def test_queue_competing_consumers_each_message_once(connect):
    dest = f"/queue/{unique('compete')}"
    a, b, producer = connect(), connect(), connect()
    a.subscribe(dest)
    b.subscribe(dest)
    n = 20
    for i in range(n):
        producer.send(dest, f"job-{i}", receipt=(i == n - 1))
    expected = {f"job-{i}" for i in range(n)}

    def total():
        return len(a.messages()) + len(b.messages())

    wait_until(lambda: total() >= n, what=f"{n} queue messages across both consumers")
    a.assert_quiet(lambda m: False)  # let any duplicates arrive
    bodies_a = [m.body for m in a.messages()]
    bodies_b = [m.body for m in b.messages()]
    assert sorted(bodies_a + bodies_b) == sorted(expected), "each message exactly once"
    assert bodies_a and bodies_b, (
        f"both consumers should get work: a={len(bodies_a)} b={len(bodies_b)}")
    # Each consumer sees its share in publish order.
    for bodies in (bodies_a, bodies_b):
        seq = [int(x.split("-")[1]) for x in bodies]
        assert seq == sorted(seq)


def test_queue_keeps_messages_until_a_consumer_arrives(connect):
    dest = f"/queue/{unique('buffer')}"
    producer = connect()
    for i in range(3):
        producer.send(dest, f"early-{i}", receipt=(i == 2))
    consumer = connect()
    consumer.subscribe(dest)
    got = consumer.wait_messages(3)
    assert [m.body for m in got] == ["early-0", "early-1", "early-2"]


def test_client_individual_ack_and_nack_redelivers(connect):
    dest = f"/queue/{unique('nack')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest, ack="client-individual")
    producer.send(dest, "keep")
    producer.send(dest, "retry")
    first, second = consumer.wait_messages(2)
    assert (first.body, second.body) == ("keep", "retry")
    assert first.headers.get("ack"), "STOMP 1.2 MESSAGE needs an ack header in client modes"
    assert first.headers.get("redelivered", "false") != "true"
    consumer.ack(first, receipt="ack-keep")
    consumer.nack(second, receipt="nack-retry")
    again = consumer.wait_messages(1, lambda m: m.headers.get("redelivered") == "true",
                                   what="redelivered message")[0]
    assert again.body == "retry"
    consumer.ack(again, receipt="ack-retry")
    # Everything is settled: a fresh consumer of the queue gets only what comes next.
    consumer.close()
    fresh = connect()
    fresh.subscribe(dest, ack="client-individual")
    producer.send(dest, "marker")
    (m,) = fresh.wait_messages(1)
    assert m.body == "marker", f"an acked message came back: {m.body!r}"


def test_unacked_messages_go_to_another_consumer_after_disconnect(connect):
    dest = f"/queue/{unique('unacked')}"
    first, producer = connect(), connect()
    first.subscribe(dest, ack="client-individual")
    producer.send(dest, "precious")
    first.wait_messages(1)
    first.drop()  # no ACK, no DISCONNECT
    second = connect()
    second.subscribe(dest, ack="client-individual")
    (m,) = second.wait_messages(1)
    assert m.body == "precious"
    assert m.headers.get("redelivered") == "true", m.headers
    second.ack(m, receipt="ack-precious")


def test_client_ack_is_cumulative(connect):
    dest = f"/queue/{unique('cumulative')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest, ack="client")
    for i in range(3):
        producer.send(dest, f"c{i}")
    msgs = consumer.wait_messages(3)
    consumer.ack(msgs[-1], receipt="ack-last")  # acknowledges all three
    consumer.close()
    fresh = connect()
    fresh.subscribe(dest, ack="client-individual")
    producer.send(dest, "marker")
    (m,) = fresh.wait_messages(1)
    assert m.body == "marker", f"cumulative ACK did not settle {m.body!r}"


def test_prefetch_count_limits_unacked_deliveries(connect):
    dest = f"/queue/{unique('prefetch')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest, ack="client-individual", headers={"prefetch-count": "1"})
    for i in range(3):
        producer.send(dest, f"p{i}", receipt=(i == 2))
    (m0,) = consumer.wait_messages(1)
    assert m0.body == "p0"
    consumer.assert_quiet(lambda m: m.body != "p0", what="delivery beyond prefetch-count 1")
    consumer.ack(m0)
    m1 = consumer.wait_messages(2)[1]
    assert m1.body == "p1"
    consumer.assert_quiet(lambda m: m.body == "p2", what="delivery beyond prefetch-count 1")
    consumer.ack(m1)
    m2 = consumer.wait_messages(3)[2]
    assert m2.body == "p2"
    consumer.ack(m2, receipt="ack-p2")
