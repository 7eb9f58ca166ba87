//! Edits, redactions and reactions end to end: timeline events with
//! `x-relates-to`, who may do what, one reaction per user and key,
//! redactions purge the stored body (of the message and its edits) and
//! history and replay show the redacted original without a body.

mod common;

use common::{body, frame, seq, Peer};
use stompede::codec::{Command, Frame};

async fn relate(peer: &mut Peer, verb: &str, to: u64, extra: &[(&str, &str)], text: &str) -> Frame {
    let to = to.to_string();
    let mut f = frame(
        Command::Send,
        &[
            ("destination", &format!("/room/r/{verb}")),
            ("x-relates-to", &to),
        ],
    );
    for (n, v) in extra {
        f = f.header(n.to_string(), v.to_string());
    }
    peer.request(f.body(text.to_owned())).await
}

/// Every event of room `r`, oldest first, through a history page.
async fn history(peer: &mut Peer) -> Vec<Frame> {
    let to = [("x-limit", "100"), ("reply-to", "/temp-queue/h")];
    peer.command("/room/r/history", &to).await;
    let mut events = Vec::new();
    loop {
        let f = peer.expect(Command::Message).await;
        match f.get("x-event") {
            Some("history-end") => return events,
            _ if f.get("x-history") == Some("true") => events.push(f),
            _ => {}
        }
    }
}

#[tokio::test]
async fn edits_reactions_and_redactions_are_timeline_events() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    let mut bob = Peer::connect(&broker, "bob").await;
    alice.create_group("r", "bob", false).await; // 1 create, 2 join, 3 invite
    bob.command("/room/r/join", &[]).await; // 4
    bob.join_timeline("t", "r", &[]).await;
    bob.replay().await;
    let m = seq(&alice.post("r", "helo", "c1").await);
    assert_eq!(body(&bob.expect_event("message").await), "helo");

    // Edit: only the sender, only messages; the live event relates to m.
    let e = relate(
        &mut alice,
        "edit",
        m,
        &[("content-type", "text/plain")],
        "hello",
    )
    .await;
    assert_eq!(e.get("x-error"), None);
    let edit = bob.expect_event("edit").await;
    assert_eq!(edit.get("x-relates-to"), Some(&*m.to_string()));
    assert_eq!(
        (body(&edit), edit.get("x-sender")),
        ("hello", Some("alice"))
    );
    assert_eq!(seq(&edit), seq(&e));
    let r = relate(&mut bob, "edit", m, &[], "hacked").await;
    assert!(r
        .get("x-error")
        .is_some_and(|e| e.contains("only the sender")));
    let r = relate(&mut alice, "edit", 1, &[], "x").await;
    assert!(r
        .get("x-error")
        .is_some_and(|e| e.contains("only messages")));
    let r = relate(&mut alice, "edit", 999, &[], "x").await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("no event")));
    // Unread counts ignore edits.
    let unread = bob
        .command("/room/r/read", &[("x-seq", &m.to_string())])
        .await;
    assert_eq!(unread.get("x-unread"), Some("0"));

    // Reactions: one per user, key and message.
    let up = relate(&mut bob, "react", m, &[("x-reaction", "👍")], "").await;
    let live = bob.expect_event("reaction").await;
    assert_eq!(live.get("x-reaction"), Some("👍"));
    assert_eq!(live.get("x-relates-to"), Some(&*m.to_string()));
    let again = relate(&mut bob, "react", m, &[("x-reaction", "👍")], "").await;
    assert_eq!(
        (seq(&again), again.get("x-duplicate")),
        (seq(&up), Some("true"))
    );
    let r = relate(&mut bob, "react", m, &[], "").await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("x-reaction")));
    // Taking a reaction back is redacting it; then it may be given again.
    let undo = relate(&mut bob, "redact", seq(&up), &[], "").await;
    let redact = bob.expect_event("redact").await;
    assert_eq!(redact.get("x-relates-to"), Some(&*seq(&up).to_string()));
    assert_eq!(seq(&redact), seq(&undo));
    let up2 = relate(&mut bob, "react", m, &[("x-reaction", "👍")], "").await;
    assert!(seq(&up2) > seq(&undo));
    assert_eq!(up2.get("x-duplicate"), None);

    // Redaction: the sender or a moderator; bob (member) may not redact
    // alice's message, alice (owner) may redact bob's reaction.
    let r = relate(&mut bob, "redact", m, &[], "").await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("moderator")));
    let r = relate(&mut alice, "redact", seq(&up2), &[], "").await;
    assert_eq!(r.get("x-error"), None);
    assert_eq!(
        bob.expect_event("redact").await.get("x-sender"),
        Some("alice")
    );
    let gone = relate(&mut alice, "redact", m, &[("x-reason", "typo")], "").await;
    let redact = bob.expect_event("redact").await;
    assert_eq!(redact.get("x-reason"), Some("typo"));
    assert_eq!(body(&redact), "");
    let again = relate(&mut alice, "redact", m, &[], "").await;
    assert_eq!(
        (seq(&again), again.get("x-already")),
        (seq(&gone), Some("true"))
    );
    let r = relate(&mut alice, "edit", m, &[], "back").await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("redacted")));

    // History and replay: the original and its edit without body or
    // client headers, marked with the redaction; the events stay.
    let page = history(&mut alice).await;
    let by_seq = |s: u64| page.iter().find(|f| seq(f) == s).expect("event in page");
    let original = by_seq(m);
    assert_eq!(original.get("x-event"), Some("message"));
    assert_eq!(
        original.get("x-redacted-by"),
        Some(&*seq(&gone).to_string())
    );
    assert_eq!((body(original), original.get("content-type")), ("", None));
    assert_eq!(original.get("x-client-msg-id"), Some("c1"));
    let edit = by_seq(seq(&e));
    assert_eq!(edit.get("x-redacted-by"), Some(&*seq(&gone).to_string()));
    assert_eq!(body(edit), "");
    let first = by_seq(seq(&up));
    assert_eq!(first.get("x-redacted-by"), Some(&*seq(&undo).to_string()));
    assert_eq!(first.get("x-reaction"), Some("👍"));
    assert_eq!(by_seq(seq(&gone)).get("x-event"), Some("redact"));

    let mut later = Peer::connect(&broker, "bob").await;
    later
        .join_timeline("s", "r", &[("x-stream-offset", &format!("offset={m}"))])
        .await;
    let (replayed, end) = later.replay().await;
    assert_eq!(end.get("x-recovered"), Some("true"));
    assert_eq!(
        replayed[0].get("x-redacted-by"),
        Some(&*seq(&gone).to_string())
    );
    assert_eq!(body(&replayed[0]), "");
    assert!(replayed.iter().all(|f| !body(f).contains("hel")));
}
