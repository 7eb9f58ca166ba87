//! /temp-queue/ replies and /user/ destinations.

mod common;

use common::{frame, start, Peer};
use std::time::Duration;
use stompede::codec::Command;

#[tokio::test]
async fn temp_queue_reply_to_is_rewritten_and_reaches_the_requester() {
    let broker = start().await;
    let mut server = Peer::connected(&broker).await;
    server.subscribe("svc", "/queue/service", "auto").await;
    let mut requester = Peer::connected(&broker).await;
    requester
        .request(
            frame(
                Command::Send,
                &[
                    ("destination", "/queue/service"),
                    ("reply-to", "/temp-queue/answers"),
                ],
            )
            .body("question"),
        )
        .await;
    let q = server.expect_message("question").await;
    let reply_to = q.get("reply-to").expect("reply-to").to_owned();
    assert!(
        reply_to.starts_with("/reply-queue/"),
        "rewritten: {reply_to}"
    );
    server
        .request(
            frame(
                Command::Send,
                &[("destination", &reply_to), ("correlation-id", "7")],
            )
            .body("answer"),
        )
        .await;
    let a = requester.expect_message("answer").await;
    assert_eq!(a.get("subscription"), Some("/temp-queue/answers"));
    assert_eq!(a.get("correlation-id"), Some("7"));
}

#[tokio::test]
async fn an_explicit_temp_queue_subscription_receives_replies() {
    let broker = start().await;
    let mut requester = Peer::connected(&broker).await;
    requester.subscribe("mine", "/temp-queue/r", "auto").await;
    let mut server = Peer::connected(&broker).await;
    server.subscribe("svc", "/queue/svc2", "auto").await;
    requester
        .request(frame(
            Command::Send,
            &[
                ("destination", "/queue/svc2"),
                ("reply-to", "/temp-queue/r"),
            ],
        ))
        .await;
    let q = server.expect(Command::Message).await;
    let reply_to = q.get("reply-to").expect("reply-to").to_owned();
    server.publish(&reply_to, "back").await;
    let a = requester.expect_message("back").await;
    assert_eq!(a.get("subscription"), Some("mine"));
}

#[tokio::test]
async fn reply_queues_cannot_be_subscribed_by_others() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SUBSCRIBE\nid:x\ndestination:/reply-queue/s1.r\n\n\0")
        .await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn temp_queues_die_with_their_connection() {
    let broker = start().await;
    let mut requester = Peer::connected(&broker).await;
    requester
        .subscribe("mine", "/temp-queue/gone", "auto")
        .await;
    let mut server = Peer::connected(&broker).await;
    server.subscribe("svc", "/queue/svc3", "auto").await;
    requester
        .request(frame(
            Command::Send,
            &[
                ("destination", "/queue/svc3"),
                ("reply-to", "/temp-queue/gone"),
            ],
        ))
        .await;
    let reply_to = server
        .expect(Command::Message)
        .await
        .get("reply-to")
        .expect("reply-to")
        .to_owned();
    requester.raw(b"DISCONNECT\nreceipt:d\n\n\0").await;
    requester.expect(Command::Receipt).await;
    // Sending to it afterwards is harmless and reaches nobody.
    server.publish(&reply_to, "late").await;
}

#[tokio::test]
async fn user_destinations_reach_every_session_of_that_user_only() {
    let broker = start().await;
    let mut alice1 = Peer::connected_as(&broker, "alice").await;
    let mut alice2 = Peer::connected_as(&broker, "alice").await;
    let mut bob = Peer::connected_as(&broker, "bob").await;
    for p in [&mut alice1, &mut alice2, &mut bob] {
        p.subscribe("inbox", "/user/queue/inbox", "auto").await;
    }
    let mut sender = Peer::connected_as(&broker, "carol").await;
    sender.publish("/user/alice/queue/inbox", "for alice").await;
    for p in [&mut alice1, &mut alice2] {
        let m = p.expect_message("for alice").await;
        assert_eq!(m.get("destination"), Some("/user/queue/inbox"));
        assert_eq!(m.get("subscription"), Some("inbox"));
    }
    bob.expect_silence(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn user_destinations_need_a_login() {
    let broker = start().await;
    let mut anon = Peer::connected(&broker).await;
    anon.raw(b"SUBSCRIBE\nid:1\ndestination:/user/queue/inbox\n\n\0")
        .await;
    anon.expect_error_and_close().await;
}
