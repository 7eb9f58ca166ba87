//! The timeline end to end: receipts after storage with the sequence,
//! stamped headers, dedupe, membership events, replay on SUBSCRIBE
//! (gapless resume, x-history, x-stream-offset, never partial), history
//! pages, and durability across a restart.

mod common;

use common::{body, frame, seq, Peer};
use stompede::codec::Command;
use stompede_chat::ChatConfig;

#[tokio::test]
async fn receipts_carry_the_seq_and_client_copies_of_stamped_headers_are_dropped() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    alice.join_timeline("t", "r", &[]).await;
    let end = alice.replay().await.1;
    let epoch = end.get("x-epoch").expect("epoch").to_owned();
    let head = end
        .get("x-head-seq")
        .and_then(|s| s.parse::<u64>().ok())
        .expect("head");
    assert_eq!(head, 2, "create and the owner's join");

    let forged = frame(
        Command::Send,
        &[
            ("destination", "/room/r"),
            ("x-seq", "999"),
            ("x-sender", "mallory"),
            ("x-epoch", "forged"),
            ("x-event", "kick"),
            ("x-replay", "true"),
            ("x-custom", "kept"),
        ],
    )
    .body("hi");
    let receipt = alice.request(forged).await;
    assert_eq!(seq(&receipt), 3);
    assert_eq!(receipt.get("x-epoch"), Some(&*epoch));
    let m = alice.expect_event("message").await;
    assert_eq!(m.get("message-id"), Some("r:3"));
    assert_eq!(seq(&m), 3);
    assert_eq!(m.get("x-prev-seq"), Some("2"));
    assert_eq!(m.get("x-sender"), Some("alice"));
    assert_eq!(m.get("x-epoch"), Some(&*epoch));
    assert_eq!(m.get("x-replay"), None);
    assert_eq!(m.get("x-custom"), Some("kept"));
    let ts: u64 = m
        .get("x-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("ts");
    assert!(ts > 1_600_000_000_000);
    for n in 4..=6 {
        assert_eq!(seq(&alice.post("r", "more", &format!("c{n}")).await), n);
    }
}

#[tokio::test]
async fn a_repeated_client_message_id_is_published_once() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    alice.create_group("r", "bob", false).await;
    bob.command("/room/r/join", &[]).await;
    bob.join_timeline("t", "r", &[]).await;
    bob.replay().await;
    let first = alice.post("r", "once", "same-id").await;
    let again = alice.post("r", "once", "same-id").await;
    assert_eq!(seq(&first), seq(&again));
    assert_eq!(again.get("x-duplicate"), Some("true"));
    // Another sender may use the same id.
    let bobs = bob.post("r", "mine", "same-id").await;
    assert_eq!(seq(&bobs), seq(&first) + 1);
    let m = bob.expect_event("message").await;
    assert_eq!(
        (body(&m), m.get("x-client-msg-id")),
        ("once", Some("same-id"))
    );
    assert_eq!(body(&bob.expect_event("message").await), "mine");
    bob.expect_silence_on("t", std::time::Duration::from_millis(200))
        .await;
}

#[tokio::test]
async fn membership_events_are_in_the_timeline() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    alice.create_group("r", "", true).await;
    alice.join_timeline("t", "r", &[]).await;
    alice.replay().await;
    bob.command("/room/r/join", &[]).await;
    let join = alice.expect_event("join").await;
    assert_eq!(join.get("x-sender"), Some("bob"));
    alice
        .command("/room/r/invite", &[("x-user", "carol")])
        .await;
    let invite = alice.expect_event("invite").await;
    assert_eq!(invite.get("x-target"), Some("carol"));
    bob.command("/room/r/leave", &[]).await;
    assert_eq!(
        alice.expect_event("leave").await.get("x-sender"),
        Some("bob")
    );
}

/// Posts `n` messages as `peer`, numbered from `from`.
async fn post_many(peer: &mut Peer, room: &str, from: u64, n: u64) {
    for i in from..from + n {
        peer.post(room, &format!("m{i}"), &format!("id{i}")).await;
    }
}

#[tokio::test]
async fn a_resume_after_a_disconnect_gets_exactly_what_was_missed() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    bob.join_timeline("t", "r", &[]).await;
    let (_, end) = bob.replay().await;
    let epoch = end.get("x-epoch").expect("epoch").to_owned();
    post_many(&mut alice, "r", 0, 3).await;
    let mut last = 0;
    for _ in 0..3 {
        last = seq(&bob.expect_event("message").await);
    }
    drop(bob);

    post_many(&mut alice, "r", 3, 5).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    let since = last.to_string();
    bob.join_timeline("t", "r", &[("x-since-seq", &since), ("x-epoch", &epoch)])
        .await;
    let (replayed, end) = bob.replay().await;
    let seqs: Vec<u64> = replayed.iter().map(seq).collect();
    assert_eq!(seqs, (last + 1..=last + 5).collect::<Vec<_>>());
    assert!(replayed.iter().all(|m| m.get("x-replay") == Some("true")));
    assert_eq!(body(&replayed[0]), "m3");
    assert_eq!(end.get("x-recovered"), Some("true"));
    assert_eq!(end.get("x-replayed"), Some("5"));
    // Live messages follow the marker.
    alice.post("r", "live", "live").await;
    let live = bob.expect_event("message").await;
    assert_eq!((seq(&live), live.get("x-replay")), (last + 6, None));
}

#[tokio::test]
async fn a_stale_epoch_or_a_too_old_cursor_is_not_partly_recovered() {
    let broker = common::start_with(ChatConfig {
        max_replay: 5,
        ..common::unlimited()
    })
    .await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    post_many(&mut alice, "r", 0, 10).await;
    alice.join_timeline("a", "r", &[]).await;
    let epoch = alice
        .replay()
        .await
        .1
        .get("x-epoch")
        .expect("epoch")
        .to_owned();

    for headers in [
        vec![("x-since-seq", "3"), ("x-epoch", "another-epoch")],
        vec![("x-since-seq", "3")],
        vec![("x-since-seq", "3"), ("x-epoch", &*epoch)], // 9 missed > 5
        vec![("x-since-seq", "99"), ("x-epoch", &*epoch)],
        vec![("x-history", "6")],
        vec![("x-stream-offset", "first")],
    ] {
        let mut peer = Peer::connect(&broker, "alice").await;
        peer.join_timeline("s", "r", &headers).await;
        let (replayed, end) = peer.replay().await;
        assert!(replayed.is_empty(), "{headers:?}: partial replay");
        assert_eq!(end.get("x-recovered"), Some("false"), "{headers:?}");
        assert_eq!(end.get("x-head-seq"), Some("12"));
    }
    let mut peer = Peer::connect(&broker, "alice").await;
    peer.join_timeline("s", "r", &[("x-since-seq", "8"), ("x-epoch", &epoch)])
        .await;
    let (replayed, end) = peer.replay().await;
    assert_eq!(replayed.len(), 4);
    assert_eq!(end.get("x-recovered"), Some("true"));
}

#[tokio::test]
async fn history_k_and_stream_offsets() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await; // seq 1, 2
    post_many(&mut alice, "r", 0, 8).await; // seq 3..=10
    type Case<'a> = (&'a [(&'a str, &'a str)], Vec<u64>);
    let cases: [Case<'_>; 7] = [
        (&[("x-history", "3")], vec![8, 9, 10]),
        (&[("x-history", "0")], vec![]),
        (&[("x-stream-offset", "first")], (1..=10).collect()),
        (&[("x-stream-offset", "last")], vec![10]),
        (&[("x-stream-offset", "next")], vec![]),
        (&[("x-stream-offset", "offset=7")], vec![7, 8, 9, 10]),
        (&[("x-stream-offset", "timestamp=0")], (1..=10).collect()),
    ];
    for (headers, expected) in cases {
        let mut peer = Peer::connect(&broker, "alice").await;
        peer.join_timeline("s", "r", headers).await;
        let (replayed, end) = peer.replay().await;
        assert_eq!(
            replayed.iter().map(seq).collect::<Vec<_>>(),
            expected,
            "{headers:?}"
        );
        assert_eq!(end.get("x-recovered"), Some("true"), "{headers:?}");
    }
    let mut peer = Peer::connect(&broker, "alice").await;
    let future = (u64::MAX / 2000).to_string();
    peer.join_timeline(
        "s",
        "r",
        &[("x-stream-offset", &format!("timestamp={future}"))],
    )
    .await;
    assert!(peer.replay().await.0.is_empty());
    let r = peer
        .request(frame(
            Command::Subscribe,
            &[
                ("id", "bad"),
                ("destination", "/room/r"),
                ("x-history", "many"),
            ],
        ))
        .await;
    assert!(r.get("x-error").is_some());
}

#[tokio::test]
async fn replay_and_live_messages_have_no_gap_and_no_duplicate() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "", false).await;
    // Posts stream in without waiting while a reader subscribes.
    let mut reader_task = None;
    for i in 0..300 {
        alice
            .send(frame(Command::Send, &[("destination", "/room/r")]).body(format!("m{i}")))
            .await;
        if i == 100 {
            let mut reader = Peer::connect(&broker, "alice").await;
            reader
                .send(frame(
                    Command::Subscribe,
                    &[
                        ("id", "s"),
                        ("destination", "/room/r"),
                        ("x-stream-offset", "first"),
                    ],
                ))
                .await;
            reader_task = Some(tokio::spawn(async move {
                let mut seqs = Vec::new();
                let mut marker_at = None;
                while seqs.len() < 302 {
                    let f = reader.expect(Command::Message).await;
                    if f.get("x-event") == Some("replay-end") {
                        assert_eq!(f.get("x-recovered"), Some("true"));
                        marker_at = Some(seqs.len());
                        continue;
                    }
                    assert_eq!(f.get("x-replay").is_some(), marker_at.is_none());
                    seqs.push(seq(&f));
                }
                (seqs, marker_at)
            }));
        }
    }
    let (seqs, marker_at) = reader_task
        .expect("reader started")
        .await
        .expect("reader saw every message");
    assert_eq!(seqs, (1..=302).collect::<Vec<_>>());
    assert!(marker_at.is_some_and(|at| at >= 2));
    let r = alice.post("r", "last", "last").await;
    assert_eq!(seq(&r), 303);
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.inbox().await;
    alice.create_group("r", "", false).await; // 1, 2
    post_many(&mut alice, "r", 0, 20).await; // 3..=22

    async fn page(peer: &mut Peer, headers: &[(&str, &str)]) -> (Vec<u64>, stompede::codec::Frame) {
        peer.command("/room/r/history", headers).await;
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
    let (latest, end) = page(&mut alice, &[("x-limit", "5")]).await;
    assert_eq!(latest, vec![18, 19, 20, 21, 22]);
    assert_eq!(end.get("x-has-more"), Some("true"));
    let (older, _) = page(&mut alice, &[("x-limit", "5"), ("x-before-seq", "18")]).await;
    assert_eq!(older, vec![13, 14, 15, 16, 17]);
    let (oldest, end) = page(&mut alice, &[("x-limit", "50"), ("x-before-seq", "4")]).await;
    assert_eq!(oldest, vec![1, 2, 3]);
    assert_eq!(end.get("x-has-more"), Some("false"));
    let (newer, end) = page(&mut alice, &[("x-limit", "3"), ("x-after-seq", "10")]).await;
    assert_eq!(newer, vec![11, 12, 13]);
    assert_eq!(end.get("x-has-more"), Some("true"));
    let (tail, end) = page(&mut alice, &[("x-after-seq", "20")]).await;
    assert_eq!(tail, vec![21, 22]);
    assert_eq!(end.get("x-has-more"), Some("false"));
    let mut bob = Peer::connect(&broker, "bob").await;
    let r = bob.command("/room/r/history", &[]).await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("not a member")));
}

#[tokio::test]
async fn the_timeline_survives_a_restart() {
    let dir = common::scratch("restart");
    let (epoch, last) = {
        let broker = common::start_on_disk(&dir).await;
        let mut alice = Peer::connect(&broker, "alice").await;
        alice.create_group("r", "bob", false).await;
        let mut bob = Peer::connect(&broker, "bob").await;
        bob.command("/room/r/join", &[]).await;
        bob.join_timeline("t", "r", &[]).await;
        let epoch = bob
            .replay()
            .await
            .1
            .get("x-epoch")
            .expect("epoch")
            .to_owned();
        alice.post("r", "before", "p1").await;
        let last = seq(&bob.expect_event("message").await);
        drop(bob);
        alice.post("r", "missed 1", "p2").await;
        alice.post("r", "missed 2", "p3").await;
        drop(alice);
        broker.shutdown().await;
        (epoch, last)
    };
    let broker = common::start_on_disk(&dir).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    let since = last.to_string();
    bob.join_timeline("t", "r", &[("x-since-seq", &since), ("x-epoch", &epoch)])
        .await;
    let (replayed, end) = bob.replay().await;
    let bodies: Vec<_> = replayed.iter().map(body).collect();
    assert_eq!(bodies, ["missed 1", "missed 2"]);
    assert_eq!(end.get("x-recovered"), Some("true"));
    // Dedupe and membership survive too.
    let mut alice = Peer::connect(&broker, "alice").await;
    let again = alice.post("r", "missed 2", "p3").await;
    assert_eq!(again.get("x-duplicate"), Some("true"));
    assert_eq!(seq(&again), last + 2);
    let next = alice.post("r", "after", "p4").await;
    assert_eq!(seq(&next), last + 3);
    let mut carol = Peer::connect(&broker, "carol").await;
    assert!(carol.post("r", "x", "c").await.get("x-error").is_some());
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
