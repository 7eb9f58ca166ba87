"""Request/reply through /temp-queue/ and per-user /user/ destinations."""

from stomp_harness import unique


def test_temp_queue_request_reply(connect):
    service = f"/queue/{unique('service')}"
    responder = connect()
    responder.subscribe(service)
    requesters = [connect(), connect()]
    for i, req in enumerate(requesters):
        # Both use the same temp-queue name: each must get its own replies only.
        req.send(service, f"question-{i}",
                 headers={"reply-to": "/temp-queue/answers", "correlation-id": f"c{i}"})
    requests = responder.wait_messages(2)
    reply_tos = [r.headers["reply-to"] for r in requests]
    assert len(set(reply_tos)) == 2, f"temp-queues of two connections must differ: {reply_tos}"
    for r in requests:
        assert r.headers["reply-to"] != "/temp-queue/answers", "reply-to was not rewritten"
        responder.send(r.headers["reply-to"], "answer-to-" + r.body,
                       headers={"correlation-id": r.headers["correlation-id"]})
    for i, req in enumerate(requesters):
        (reply,) = req.wait_messages(1)
        assert reply.body == f"answer-to-question-{i}"
        assert reply.headers["correlation-id"] == f"c{i}"
    for i, req in enumerate(requesters):
        req.assert_quiet(lambda m, mine=f"c{i}": m.headers.get("correlation-id") != mine,
                         what="reply meant for the other requester")
    # The temp queue keeps working for a second request on the same connection.
    requesters[0].send(service, "again", headers={"reply-to": "/temp-queue/answers"})
    third = responder.wait_messages(3)[2]
    responder.send(third.headers["reply-to"], "second answer")
    requesters[0].wait_messages(2, what="second reply")
    assert requesters[0].messages()[1].body == "second answer"


def test_user_destination_reaches_every_session_of_that_user_only(connect):
    alice = unique("alice")
    bob = unique("bob")
    alice1, alice2 = connect(login=alice), connect(login=alice)
    bob1 = connect(login=bob)
    for c in (alice1, alice2, bob1):
        c.subscribe("/user/queue/inbox")
    sender = connect(login=unique("carol"))
    sender.send(f"/user/{alice}/queue/inbox", "for alice")
    sender.send(f"/user/{bob}/queue/inbox", "for bob")
    for c in (alice1, alice2):
        (m,) = c.wait_messages(1, what="message to alice")
        assert m.body == "for alice"
    (m,) = bob1.wait_messages(1)
    # bob's first message is his own: alice's (sent earlier) never reached him.
    assert m.body == "for bob"
    for c in (alice1, alice2):
        c.assert_quiet(lambda m: m.body == "for bob", what="bob's message at alice")
