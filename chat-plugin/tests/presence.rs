//! Presence and typing end to end: a snapshot then join/leave changes,
//! with a grace period so a reconnect does not flicker; typing sets and
//! clears entries, subscribers get the full list, entries expire.

mod common;

use common::{frame, json, Peer};
use std::time::{Duration, Instant};
use stompede::codec::Command;
use stompede_chat::ChatConfig;

const GRACE: Duration = Duration::from_millis(400);
const TTL: Duration = Duration::from_millis(500);

async fn broker() -> stompede::BrokerHandle {
    common::start_with(ChatConfig {
        presence_grace_ms: GRACE.as_millis() as u64,
        typing_ttl_ms: TTL.as_millis() as u64,
        ..common::unlimited()
    })
    .await
}

async fn watch(peer: &mut Peer, id: &str, what: &str) {
    peer.request(frame(
        Command::Subscribe,
        &[("id", id), ("destination", &format!("/room/r/{what}"))],
    ))
    .await;
}

fn list(f: &stompede::codec::Frame, key: &str) -> Vec<String> {
    serde_json::from_value(json(f)[key].clone()).expect("a list of users")
}

#[tokio::test]
async fn presence_is_a_snapshot_then_changes_and_reconnects_do_not_flicker() {
    let broker = broker().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;

    watch(&mut alice, "p", "presence").await;
    let snapshot = alice.expect_event("presence").await;
    assert_eq!(snapshot.get("x-presence"), Some("snapshot"));
    assert!(list(&snapshot, "online").is_empty());
    alice.join_timeline("t", "r", &[]).await;
    let join = alice.expect_event("presence").await;
    assert_eq!(
        (join.get("x-presence"), join.get("x-user")),
        (Some("join"), Some("alice"))
    );
    bob.join_timeline("t", "r", &[]).await;
    let join = alice.expect_event("presence").await;
    assert_eq!(join.get("x-user"), Some("bob"));
    assert_eq!(list(&join, "online"), ["alice", "bob"]);

    // bob's connection drops and comes back within the grace: no change.
    drop(bob);
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.join_timeline("t", "r", &[]).await;
    alice.expect_silence_on("p", GRACE * 2).await;

    // bob goes for good: "leave" after the grace period.
    let gone = Instant::now();
    drop(bob);
    let leave = alice.expect_event("presence").await;
    assert!(
        gone.elapsed() >= GRACE - Duration::from_millis(50),
        "{:?}",
        gone.elapsed()
    );
    assert_eq!(
        (leave.get("x-presence"), leave.get("x-user")),
        (Some("leave"), Some("bob"))
    );
    assert_eq!(list(&leave, "online"), ["alice"]);

    // Non-members see nothing.
    let mut carol = Peer::connect(&broker, "carol").await;
    let r = carol
        .request(frame(
            Command::Subscribe,
            &[("id", "p"), ("destination", "/room/r/presence")],
        ))
        .await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("not a member")));
}

#[tokio::test]
async fn typing_lists_every_typer_and_entries_expire() {
    let broker = broker().await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    watch(&mut alice, "ty", "typing").await;
    assert!(list(&alice.expect_event("typing").await, "typing").is_empty());

    let r = bob.command("/room/r/typing", &[]).await;
    assert_eq!(r.get("x-error"), None);
    assert_eq!(list(&alice.expect_event("typing").await, "typing"), ["bob"]);
    alice
        .command("/room/r/typing", &[("x-typing", "true")])
        .await;
    assert_eq!(
        list(&alice.expect_event("typing").await, "typing"),
        ["alice", "bob"]
    );
    bob.command("/room/r/typing", &[("x-typing", "false")])
        .await;
    assert_eq!(
        list(&alice.expect_event("typing").await, "typing"),
        ["alice"]
    );
    // alice's entry expires without renewal.
    let set = Instant::now();
    assert!(list(&alice.expect_event("typing").await, "typing").is_empty());
    assert!(set.elapsed() >= TTL / 2);

    // A renewal changes nothing others see.
    bob.command("/room/r/typing", &[]).await;
    alice.expect_event("typing").await;
    bob.command("/room/r/typing", &[]).await;
    alice.expect_silence_on("ty", TTL / 3).await;

    let mut carol = Peer::connect(&broker, "carol").await;
    let r = carol.command("/room/r/typing", &[]).await;
    assert!(r.get("x-error").is_some_and(|e| e.contains("not a member")));
}

/// Holds the room's task inside the offline hook while a message whose
/// body is "hold" is told, until released.
struct Gate {
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl stompede_chat::OfflineHook for Gate {
    fn offline_message(&self, message: &stompede_chat::OfflineMessage) {
        if &message.body[..] == b"hold" {
            let _ = self.entered.send(());
            // The room's worker thread waits; its other tasks move on.
            tokio::task::block_in_place(|| {
                let release = self.release.lock().expect("gate");
                let _ = release.recv_timeout(Duration::from_secs(20));
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_disconnect_reaches_a_room_whose_queue_is_full() {
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let gate = Gate {
        entered: entered_tx,
        release: std::sync::Mutex::new(release_rx),
    };
    let plugin = stompede_chat::ChatPlugin::new(ChatConfig {
        room_queue: 2,
        presence_grace_ms: 100,
        ..common::unlimited()
    })
    .with_offline_hook(std::sync::Arc::new(gate));
    let broker = common::start_plugin(plugin).await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob,carol", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    // carol is a member with no session: posts reach the offline hook.
    let mut carol = Peer::connect(&broker, "carol").await;
    carol.command("/room/r/join", &[]).await;
    drop(carol);
    watch(&mut alice, "p", "presence").await;
    alice.expect_event("presence").await;
    bob.join_timeline("t", "r", &[]).await;
    let join = alice.expect_event("presence").await;
    assert_eq!(join.get("x-user"), Some("bob"));

    // The room's task stops in the hook; then its queue fills up.
    alice
        .send(frame(Command::Send, &[("destination", "/room/r")]).body("hold".to_owned()))
        .await;
    tokio::time::timeout(common::WAIT, entered.recv())
        .await
        .expect("the room holds")
        .expect("gate");
    for _ in 0..2 {
        alice
            .send(frame(
                Command::Send,
                &[("destination", "/room/r/read"), ("x-seq", "1")],
            ))
            .await;
    }
    let busy = alice.command("/room/r/read", &[("x-seq", "1")]).await;
    assert!(
        busy.get("x-error").is_some_and(|e| e.contains("busy")),
        "{busy:?}"
    );
    // bob's connection ends now: his unsubscribe must not be lost.
    drop(bob);
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send(()).expect("release");
    // Nothing is posted after the held message, so only the unsubscribe
    // can tell the room that bob is gone.
    let leave = loop {
        let f = alice.expect_event("presence").await;
        if f.get("x-presence") == Some("leave") {
            break f;
        }
    };
    assert_eq!(leave.get("x-user"), Some("bob"));
    assert!(list(&leave, "online").is_empty());
}
