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
