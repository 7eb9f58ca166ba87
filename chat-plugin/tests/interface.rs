//! The plugin interface as the chat uses it: the inbox snapshot on the
//! subscription that asked (before its RECEIPT, to no other session),
//! answers to a `/temp-queue/` reply-to, and storage released on stop.

mod common;

use common::{frame, json, seq, Peer};
use std::time::Duration;
use stompede::codec::Command;

#[tokio::test]
async fn the_inbox_snapshot_goes_to_the_new_subscription_only_and_before_its_receipt() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut phone = Peer::connect(&broker, "bob").await;
    phone.command("/room/r/join", &[]).await;
    phone.inbox().await;
    assert_eq!(
        phone
            .expect_event("unread-snapshot")
            .await
            .get("x-total-unread"),
        Some("0")
    );
    alice.post("r", "one", "c1").await;
    alice.post("r", "two", "c2").await;
    // Wait for the coalesced push so the phone's stream is quiet.
    loop {
        let unread = phone.expect_event("unread").await;
        if unread.get("x-unread") == Some("2") {
            break;
        }
    }

    let mut laptop = Peer::connect(&broker, "bob").await;
    laptop
        .send(frame(
            Command::Subscribe,
            &[
                ("id", "in"),
                ("destination", "/user/queue/chat"),
                ("receipt", "sub-1"),
            ],
        ))
        .await;
    let snapshot = laptop.expect(Command::Message).await;
    assert_eq!(snapshot.get("x-event"), Some("unread-snapshot"));
    assert_eq!(snapshot.get("subscription"), Some("in"));
    assert_eq!(snapshot.get("destination"), Some("/user/queue/chat"));
    assert_eq!(snapshot.get("x-total-unread"), Some("2"));
    assert_eq!(json(&snapshot)["rooms"][0]["unread"], 2);
    let receipt = laptop.expect(Command::Receipt).await;
    assert_eq!(receipt.get("receipt-id"), Some("sub-1"));
    // The phone's inbox did not get a second snapshot.
    phone.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn answers_go_to_a_temp_queue_reply_to() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    alice.post("r", "hello", "c1").await;
    let mut other = Peer::connect(&broker, "alice").await;
    other.inbox().await;
    other.expect_event("unread-snapshot").await;

    // stompjs RPC style: reply-to a temp queue, no subscription needed.
    alice
        .send(frame(
            Command::Send,
            &[
                ("destination", "/rooms/list"),
                ("reply-to", "/temp-queue/rpc"),
                ("correlation-id", "q-1"),
            ],
        ))
        .await;
    let reply = alice.expect(Command::Message).await;
    assert_eq!(reply.get("x-event"), Some("reply"));
    assert_eq!(reply.get("x-command"), Some("list"));
    assert_eq!(reply.get("correlation-id"), Some("q-1"));
    assert!(reply
        .get("destination")
        .is_some_and(|d| d.starts_with("/reply-queue/")));
    assert_eq!(json(&reply)["rooms"][0]["room"], "r");

    // A history page arrives there too, then its end marker.
    alice
        .send(frame(
            Command::Send,
            &[
                ("destination", "/room/r/history"),
                ("reply-to", "/temp-queue/rpc"),
                ("correlation-id", "q-2"),
                ("x-limit", "1"),
            ],
        ))
        .await;
    let event = alice.expect(Command::Message).await;
    assert_eq!(event.get("x-history"), Some("true"));
    assert_eq!(event.get("correlation-id"), Some("q-2"));
    assert_eq!(seq(&event), 3);
    let end = alice.expect(Command::Message).await;
    assert_eq!(end.get("x-event"), Some("history-end"));
    assert_eq!(end.get("correlation-id"), Some("q-2"));
    // The user's other session saw none of it (only its unread notice).
    while let Some(Some(f)) = other.try_frame(Duration::from_millis(300)).await {
        assert_eq!(f.get("x-event"), Some("unread"), "{f:?}");
    }

    // A reply-to that is neither /user/ nor a temp queue is refused softly.
    let r = alice
        .command("/rooms/list", &[("reply-to", "/topic/elsewhere")])
        .await;
    assert!(r
        .get("x-error")
        .is_some_and(|e| e.contains("replies go to")));
}

#[tokio::test]
async fn stopping_the_broker_releases_the_chat_database() {
    let dir = common::scratch("stop");
    let broker = common::start_on_disk(&dir).await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    alice.join_timeline("t", "r", &[]).await;
    alice.replay().await;
    alice.post("r", "kept", "c1").await;
    broker.shutdown().await;
    drop(alice);
    // The room task ends and closes the database: it opens again soon
    // (the runtime must keep running for the task to end).
    let path = dir.join("plugins").join("chat");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        match sled::Config::new().path(&path).open() {
            Ok(db) => {
                assert!(!db.is_empty());
                break;
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the chat database is still held: {e}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
