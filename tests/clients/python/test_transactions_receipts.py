"""Transactions (BEGIN/COMMIT/ABORT) and RECEIPT frames for every command that takes one."""

import uuid

from stomp_harness import unique, wait_until


def test_commit_delivers_transactional_sends_in_order(connect):
    dest = f"/queue/{unique('tx-commit')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest)
    tx = producer.conn.begin()
    producer.send(dest, "tx-1", transaction=tx)
    producer.send(dest, "tx-2", transaction=tx)
    # A non-transactional send after them overtakes them: they are held until COMMIT.
    producer.send(dest, "plain")
    (first,) = consumer.wait_messages(1)
    assert first.body == "plain", f"transactional message delivered before COMMIT: {first.body!r}"
    consumer.assert_quiet(lambda m: m.body.startswith("tx-"), what="message before COMMIT")
    rid = f"commit-{uuid.uuid4().hex}"
    producer.conn.commit(tx, headers={"receipt": rid})
    producer.expect_receipt(rid)
    got = consumer.wait_messages(3)
    assert [m.body for m in got] == ["plain", "tx-1", "tx-2"]


def test_abort_discards_transactional_sends(connect):
    dest = f"/queue/{unique('tx-abort')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest)
    tx = producer.conn.begin()
    producer.send(dest, "doomed-1", transaction=tx)
    producer.send(dest, "doomed-2", transaction=tx)
    rid = f"abort-{uuid.uuid4().hex}"
    producer.conn.abort(tx, headers={"receipt": rid})
    producer.expect_receipt(rid)
    producer.send(dest, "after-abort")
    (m,) = consumer.wait_messages(1)
    assert m.body == "after-abort", f"aborted message delivered: {m.body!r}"
    consumer.assert_quiet(lambda m: m.body.startswith("doomed"), what="aborted message")


def test_ack_inside_aborted_transaction_is_undone(connect):
    dest = f"/queue/{unique('tx-ack')}"
    consumer, producer = connect(), connect()
    consumer.subscribe(dest, ack="client-individual")
    producer.send(dest, "work")
    (m,) = consumer.wait_messages(1)
    tx = consumer.conn.begin()
    consumer.ack(m, transaction=tx)
    rid = f"abort-{uuid.uuid4().hex}"
    consumer.conn.abort(tx, headers={"receipt": rid})
    consumer.expect_receipt(rid)
    consumer.drop()  # the message is still unacknowledged, so it must come back
    other = connect()
    other.subscribe(dest, ack="client-individual")
    (again,) = other.wait_messages(1)
    assert again.body == "work"
    other.ack(again, receipt="ack-work")


def test_receipts_for_each_command(connect):
    c = connect()
    dest = f"/queue/{unique('receipts')}"
    ids = {}
    ids["subscribe"] = f"r-sub-{uuid.uuid4().hex}"
    c.conn.subscribe(dest, "s1", ack="client-individual", headers={"receipt": ids["subscribe"]})
    c.expect_receipt(ids["subscribe"])
    ids["send"] = f"r-send-{uuid.uuid4().hex}"
    c.conn.send(dest, "body", headers={"receipt": ids["send"]})
    c.expect_receipt(ids["send"])
    (m,) = c.wait_messages(1)
    ids["ack"] = f"r-ack-{uuid.uuid4().hex}"
    c.ack(m, receipt=ids["ack"])
    ids["begin"] = f"r-begin-{uuid.uuid4().hex}"
    c.conn.begin("tx1", headers={"receipt": ids["begin"]})
    c.expect_receipt(ids["begin"])
    ids["commit"] = f"r-commit-{uuid.uuid4().hex}"
    c.conn.commit("tx1", headers={"receipt": ids["commit"]})
    c.expect_receipt(ids["commit"])
    ids["unsubscribe"] = f"r-unsub-{uuid.uuid4().hex}"
    c.conn.unsubscribe(id="s1", headers={"receipt": ids["unsubscribe"]})
    c.expect_receipt(ids["unsubscribe"])
    receipts = [f.headers["receipt-id"] for f in c.rec.snapshot("RECEIPT")]
    # One receipt per request, in request order, none extra.
    assert receipts == list(ids.values())
    assert not c.rec.snapshot("ERROR")


def test_disconnect_receipt_then_close(connect):
    c = connect()
    rid = f"bye-{uuid.uuid4().hex}"
    c.conn.set_receipt(rid, "DISCONNECT")
    c.conn.send_frame("DISCONNECT", {"receipt": rid})
    c.expect_receipt(rid)
    wait_until(lambda: c.rec.disconnected, what="socket close after DISCONNECT receipt")
