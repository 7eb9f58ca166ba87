//! Read markers end to end: monotonic, coalesced receipt events on
//! `/room/{id}/receipts`, every session of the reader learns its marker,
//! unread counts pushed to the inbox and a snapshot on inbox SUBSCRIBE.

mod common;

use common::{frame, json, seq, Peer};
use stompede::codec::Command;

#[tokio::test]
async fn read_markers_reach_the_room_and_every_device() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob_phone = Peer::connect(&broker, "bob").await;
    bob_phone.command("/room/r/join", &[]).await;
    let mut bob_laptop = Peer::connect(&broker, "bob").await;
    bob_laptop.inbox().await;
    bob_laptop.expect_event("unread-snapshot").await;
    alice
        .request(frame(
            Command::Subscribe,
            &[("id", "rc"), ("destination", "/room/r/receipts")],
        ))
        .await;
    let snapshot = alice.expect_event("receipts").await;
    assert_eq!(json(&snapshot)["alice"], 3, "create, join, invite");

    let mut last = 0;
    for i in 0..4 {
        last = seq(&alice.post("r", &format!("m{i}"), &format!("c{i}")).await);
    }
    // bob's unread count is pushed (coalesced) to his inbox.
    loop {
        let unread = bob_laptop.expect_event("unread").await;
        if unread.get("x-unread") == Some("4") {
            assert_eq!(unread.get("x-room"), Some("r"));
            break;
        }
    }

    // bob reads on his phone: the RECEIPT, the laptop's inbox, the room.
    let read_to = (last - 1).to_string();
    let r = bob_phone
        .command("/room/r/read", &[("x-seq", &read_to)])
        .await;
    assert_eq!(r.get("x-read-seq"), Some(&*read_to));
    assert_eq!(r.get("x-unread"), Some("1"));
    let notice = bob_laptop.expect_event("read").await;
    assert_eq!(notice.get("x-read-seq"), Some(&*read_to));
    assert_eq!(notice.get("x-unread"), Some("1"));
    // (alice's own posts and bob's join moved their markers too: those
    // events may come first.)
    loop {
        let receipts = json(&alice.expect_event("receipts").await);
        if receipts["bob"] == last - 1 {
            break;
        }
        assert!(receipts["bob"].as_u64() < Some(last - 1), "{receipts}");
    }

    // Markers never go back.
    let r = bob_phone.command("/room/r/read", &[("x-seq", "1")]).await;
    assert_eq!(r.get("x-read-seq"), Some(&*read_to));
    // A private read moves bob's marker but is not published.
    let all = last.to_string();
    let r = bob_phone
        .command("/room/r/read", &[("x-seq", &all), ("x-private", "true")])
        .await;
    assert_eq!(r.get("x-unread"), Some("0"));
    alice
        .expect_silence_on("rc", std::time::Duration::from_millis(400))
        .await;
    // Reading past the head stops at the head.
    let r = bob_phone
        .command("/room/r/read", &[("x-seq", "9999")])
        .await;
    assert_eq!(r.get("x-read-seq"), Some(&*all));
}

#[tokio::test]
async fn the_inbox_snapshot_has_the_unread_counts_after_being_offline() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("a", "bob", false).await;
    alice.create_group("b", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/a/join", &[]).await;
    bob.command("/room/b/join", &[]).await;
    drop(bob);
    for i in 0..3 {
        alice.post("a", "x", &format!("a{i}")).await;
    }
    alice.post("b", "y", "b0").await;

    let mut bob = Peer::connect(&broker, "bob").await;
    bob.inbox().await;
    let snapshot = bob.expect_event("unread-snapshot").await;
    assert_eq!(snapshot.get("x-total-unread"), Some("4"));
    let rooms = json(&snapshot)["rooms"].clone();
    assert_eq!(rooms[0]["room"], "a");
    assert_eq!(rooms[0]["unread"], 3);
    assert_eq!(rooms[1]["unread"], 1);
    // The room list carries the counts too.
    bob.command("/rooms/list", &[]).await;
    let list = json(&bob.expect_reply("list").await);
    assert_eq!(list["rooms"][0]["unread"], 3);
    // Own posts are read.
    alice.inbox().await;
    let mine = alice.expect_event("unread-snapshot").await;
    assert_eq!(mine.get("x-total-unread"), Some("0"));
}

#[tokio::test]
async fn a_reply_shows_others_the_sender_read_what_came_before() {
    let broker = common::start().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    alice
        .request(frame(
            Command::Subscribe,
            &[("id", "rc"), ("destination", "/room/r/receipts")],
        ))
        .await;
    alice.expect_event("receipts").await;

    let question = seq(&alice.post("r", "coffee?", "a1").await);
    // bob answers before his client sent the marker for the question …
    let answer = seq(&bob.post("r", "yes", "b1").await);
    // … which then arrives and is ignored: markers never go back.
    let r = bob
        .command("/room/r/read", &[("x-seq", &question.to_string())])
        .await;
    assert_eq!(r.get("x-read-seq"), Some(&*answer.to_string()));
    assert_eq!(r.get("x-unread"), Some("0"));
    // alice still sees that bob has read her question: his post moved his
    // public marker, and that is published like an explicit read.
    loop {
        let receipts = json(&alice.expect_event("receipts").await);
        if receipts["bob"] == answer {
            break;
        }
        assert!(receipts["bob"].as_u64() < Some(question), "{receipts}");
    }
    // A later receipts subscriber's snapshot agrees.
    let mut bob_tab = Peer::connect(&broker, "bob").await;
    bob_tab
        .request(frame(
            Command::Subscribe,
            &[("id", "rc"), ("destination", "/room/r/receipts")],
        ))
        .await;
    let snapshot = json(&bob_tab.expect_event("receipts").await);
    assert_eq!(snapshot["bob"], answer);
    assert_eq!(snapshot["alice"], question);
}
