//! Rate limits and retention end to end: per-user limits for posts,
//! typing and read markers refuse softly ("rate limited") and keep the
//! connection; retention by count and by age deletes old events, moves
//! the low sequence, and a resume from before it is not recovered.

mod common;

use common::{json, seq, Peer};
use std::time::Duration;
use stompede::codec::{Command, Frame};
use stompede_chat::ChatConfig;

fn limited(f: &Frame) -> bool {
    f.get("x-error") == Some("rate limited")
}

#[tokio::test]
async fn posts_typing_and_reads_are_rate_limited_per_user() {
    let broker = common::start_with(ChatConfig {
        post_rate: 2,
        post_burst: 3,
        typing_rate: 1,
        typing_burst: 1,
        read_rate: 1,
        read_burst: 2,
        ..ChatConfig::default()
    })
    .await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;

    for i in 0..3 {
        assert!(!limited(&alice.post("r", "x", &format!("c{i}")).await));
    }
    let refused = alice.post("r", "x", "c3").await;
    assert!(limited(&refused), "{refused:?}");
    // Edits count as posts; another user has their own budget.
    let edit = alice
        .command("/room/r/edit", &[("x-relates-to", "4")])
        .await;
    assert!(limited(&edit));
    assert!(!limited(&bob.post("r", "mine", "b0").await));
    // The connection stays, and the budget refills.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(seq(&alice.post("r", "again", "c3").await), 9);

    assert!(!limited(&alice.command("/room/r/typing", &[]).await));
    assert!(limited(&alice.command("/room/r/typing", &[]).await));
    assert!(!limited(
        &alice.command("/room/r/read", &[("x-seq", "5")]).await
    ));
    assert!(!limited(
        &alice.command("/room/r/read", &[("x-seq", "6")]).await
    ));
    assert!(limited(
        &alice.command("/room/r/read", &[("x-seq", "7")]).await
    ));
}

/// The sequence numbers of the latest history page and its end marker.
async fn latest(peer: &mut Peer) -> (Vec<u64>, Frame) {
    let to = [("x-limit", "50"), ("reply-to", "/temp-queue/h")];
    peer.command("/room/r/history", &to).await;
    let mut seqs = Vec::new();
    loop {
        let f = peer.expect(Command::Message).await;
        match f.get("x-event") {
            Some("history-end") => return (seqs, f),
            _ if f.get("x-history") == Some("true") => seqs.push(seq(&f)),
            _ => {}
        }
    }
}

#[tokio::test]
async fn retention_by_count_moves_the_low_sequence() {
    let broker = common::start_with(ChatConfig {
        retention_max_events: 5,
        ..common::unlimited()
    })
    .await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await; // 1, 2
    for i in 0..10 {
        alice.post("r", &format!("m{i}"), &format!("c{i}")).await; // 3..=12
    }
    let (seqs, end) = latest(&mut alice).await;
    assert_eq!(seqs, (8..=12).collect::<Vec<_>>());
    assert_eq!(end.get("x-low-seq"), Some("8"));
    assert_eq!(end.get("x-has-more"), Some("false"));

    alice.join_timeline("t", "r", &[]).await;
    let epoch = alice
        .replay()
        .await
        .1
        .get("x-epoch")
        .expect("epoch")
        .to_owned();
    for (since, recovered, replayed) in [("5", "false", 0), ("7", "true", 5), ("10", "true", 2)] {
        let mut peer = Peer::connect(&broker, "alice").await;
        peer.join_timeline("s", "r", &[("x-since-seq", since), ("x-epoch", &epoch)])
            .await;
        let (events, end) = peer.replay().await;
        assert_eq!(end.get("x-recovered"), Some(recovered), "since {since}");
        assert_eq!(events.len(), replayed, "since {since}");
        assert_eq!(end.get("x-low-seq"), Some("8"));
    }
    // A read marker at a deleted event still works; unread stays right.
    let r = alice.command("/room/r/read", &[("x-seq", "4")]).await;
    assert_eq!(r.get("x-error"), None);
    // A client message id whose post was deleted is a new post.
    let again = alice.post("r", "m0", "c0").await;
    assert_eq!((seq(&again), again.get("x-duplicate")), (13, None));
}

#[tokio::test]
async fn retention_by_age_deletes_old_events_in_running_rooms() {
    let broker = common::start_with(ChatConfig {
        retention_max_age_secs: 1,
        ..common::unlimited()
    })
    .await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    alice.post("r", "old", "c0").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    alice
        .command("/room/r/info", &[("reply-to", "/temp-queue/i")])
        .await;
    let info = json(&alice.expect_reply("info").await);
    assert_eq!(info["head"], 3);
    assert_eq!(info["low"], 4, "every event is older than a second");
    let fresh = alice.post("r", "new", "c1").await;
    let (seqs, end) = latest(&mut alice).await;
    assert_eq!(seqs, vec![seq(&fresh)]);
    assert_eq!(end.get("x-low-seq"), Some("4"));
    let mut late = Peer::connect(&broker, "alice").await;
    late.join_timeline("s", "r", &[("x-stream-offset", "first")])
        .await;
    let (events, end) = late.replay().await;
    assert_eq!((events.len(), end.get("x-recovered")), (1, Some("true")));
}

/// A SEND with headers, without a RECEIPT.
async fn send_only(peer: &mut Peer, destination: &str, headers: &[(&str, &str)]) {
    let mut f = common::frame(Command::Send, &[("destination", destination)]);
    for (n, v) in headers {
        f = f.header(n.to_string(), v.to_string());
    }
    peer.send(f).await;
}

#[tokio::test]
async fn refusals_without_a_receipt_reach_the_inbox_rate_limited() {
    let broker = common::start_with(ChatConfig {
        post_rate: 1,
        post_burst: 1,
        error_notice_rate: 1,
        error_notice_burst: 4,
        ..common::unlimited()
    })
    .await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.create_group("private", "", false).await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    alice.inbox().await;
    alice.expect_event("unread-snapshot").await;
    alice.post("r", "first", "c0").await; // takes the burst

    // Rate limited.
    send_only(&mut alice, "/room/r", &[("x-client-msg-id", "c1")]).await;
    let e = alice.expect_event("error").await;
    assert_eq!(e.get("x-error"), Some("rate limited"));
    assert_eq!(e.get("x-command"), Some("post"));
    assert_eq!(e.get("x-room"), Some("r"));
    assert_eq!(e.get("x-client-msg-id"), Some("c1"));
    assert_eq!(e.get("subscription"), Some("inbox"));

    // One that asked for a RECEIPT learns it there only.
    let r = alice.post("r", "again", "c2").await;
    assert!(limited(&r));
    // Not a member.
    send_only(&mut alice, "/room/private", &[("x-client-msg-id", "c3")]).await;
    let e = alice.expect_event("error").await;
    assert_eq!(e.get("x-client-msg-id"), Some("c3"), "no notice for c2");
    assert!(e.get("x-error").is_some_and(|m| m.contains("not a member")));
    // A bad header.
    send_only(&mut alice, "/room/r/read", &[]).await;
    let e = alice.expect_event("error").await;
    assert_eq!(
        (e.get("x-command"), e.get("x-error")),
        (Some("read"), Some("read needs x-seq"))
    );
    // RPC style: to the reply queue with the correlation id (and the
    // RECEIPT).
    let r = alice
        .command(
            "/rooms/list",
            &[
                ("x-limit", "many"),
                ("reply-to", "/temp-queue/rpc"),
                ("correlation-id", "q1"),
            ],
        )
        .await;
    assert!(r.get("x-error").is_some());
    let e = alice.expect_event("error").await;
    assert_eq!(e.get("correlation-id"), Some("q1"));
    assert_eq!(e.get("x-command"), Some("list"));
    assert_ne!(e.get("subscription"), Some("inbox"));

    // The notices themselves are rate limited: the burst is spent.
    for i in 0..20 {
        let id = format!("f{i}");
        send_only(&mut alice, "/room/private", &[("x-client-msg-id", &id)]).await;
    }
    let mut notices = 0;
    while let Some(Some(f)) = alice.try_frame(Duration::from_millis(500)).await {
        notices += usize::from(f.get("x-event") == Some("error"));
    }
    assert!(notices <= 3, "{notices} notices");
    // The connection stays.
    let r = alice.command("/rooms/list", &[]).await;
    assert_eq!(r.get("x-count"), Some("1"));
}
