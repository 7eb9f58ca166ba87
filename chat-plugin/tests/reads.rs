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
    let receipts = alice.expect_event("receipts").await;
    assert_eq!(json(&receipts)["bob"], last - 1);

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
