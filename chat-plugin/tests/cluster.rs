//! Cluster mode end to end: several brokers in one process share an
//! in-process log ([`MemoryLogBus`]) and act as one chat server: the same
//! history, sequence numbers and epochs on every node, receipts after the
//! log took the record, read markers, unread counts and membership
//! everywhere, a client of a dead node resuming on another, a restarted
//! node resuming from its stored offsets, presence and typing across nodes,
//! a resume on a node that lags waiting for it, a node started again under
//! its id answering its new clients with their own records.

mod common;

use common::{body, frame, json, seq, Peer, WAIT};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stompede::cluster::{LogBackend, MemoryLogBus};
use stompede::codec::{Command, Frame};
use stompede::config::StoreKind;
use stompede::plugin::{LogRecord, ReplicatedLog};
use stompede::{Broker, BrokerHandle};
use stompede_chat::{ChatPlugin, OfflineHook, OfflineMessage};
use tokio::sync::{mpsc, watch};

/// A node of the cluster on `bus`, storing in memory, or in a sled
/// database under `dir`.
async fn node(bus: &MemoryLogBus, id: &str, dir: Option<&Path>) -> BrokerHandle {
    let mut config = common::config();
    if let Some(dir) = dir {
        config.store.kind = StoreKind::Sled;
        config.store.path = dir.to_string_lossy().into_owned();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut builder = Broker::builder()
            .config(config.clone())
            .plugin(ChatPlugin::new(common::unlimited()))
            .cluster_log(bus.node(id));
        if dir.is_none() {
            builder = builder.store_in_memory();
        }
        match builder.build().start().await {
            Ok(broker) => return broker,
            // A broker just shut down on the same directory releases it
            // asynchronously.
            Err(e) if dir.is_some() && tokio::time::Instant::now() < deadline => {
                eprintln!("retrying start: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node {id} does not start: {e}"),
        }
    }
}

/// A node's side of the bus whose reading can be held: records reach the
/// node only while the gate is open (a node that lags behind the others).
struct Gated {
    inner: Arc<dyn LogBackend>,
    open: watch::Receiver<bool>,
}

/// The backend of node `id` on `bus`, and its gate (open while `true`).
fn gated(bus: &MemoryLogBus, id: &str, open: bool) -> (Arc<dyn LogBackend>, watch::Sender<bool>) {
    let (gate, rx) = watch::channel(open);
    let backend = Gated {
        inner: bus.node(id),
        open: rx,
    };
    (Arc::new(backend), gate)
}

impl LogBackend for Gated {
    fn node_id(&self) -> &str {
        self.inner.node_id()
    }

    fn open(&self, name: &str) -> Result<Arc<dyn ReplicatedLog>, String> {
        self.inner.open(name)
    }

    fn read(
        &self,
        name: &str,
        starts: Vec<(u32, Option<u64>)>,
    ) -> Result<mpsc::Receiver<LogRecord>, String> {
        let mut records = self.inner.read(name, starts)?;
        let mut open = self.open.clone();
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(record) = records.recv().await {
                if open.wait_for(|open| *open).await.is_err() || tx.send(record).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// A node storing in memory with `plugin`, on `backend`.
async fn start_node(backend: Arc<dyn LogBackend>, plugin: ChatPlugin) -> BrokerHandle {
    Broker::builder()
        .config(common::config())
        .store_in_memory()
        .plugin(plugin)
        .cluster_log(backend)
        .build()
        .start()
        .await
        .expect("node starts")
}

/// Keeps what the offline hook is told.
struct Recorder(mpsc::UnboundedSender<OfflineMessage>);

impl OfflineHook for Recorder {
    fn offline_message(&self, message: &OfflineMessage) {
        let _ = self.0.send(message.clone());
    }
}

/// What must be the same on every node about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    seq: u64,
    epoch: String,
    event: String,
    sender: String,
    timestamp: String,
    body: String,
    target: Option<String>,
    relates_to: Option<String>,
    redacted_by: Option<String>,
    reaction: Option<String>,
}

fn seen(f: &Frame) -> Seen {
    let h = |n| f.get(n).unwrap_or_default().to_owned();
    Seen {
        seq: seq(f),
        epoch: h("x-epoch"),
        event: h("x-event"),
        sender: h("x-sender"),
        timestamp: h("x-timestamp"),
        body: body(f).to_owned(),
        target: f.get("x-target").map(str::to_owned),
        relates_to: f.get("x-relates-to").map(str::to_owned),
        redacted_by: f.get("x-redacted-by").map(str::to_owned),
        reaction: f.get("x-reaction").map(str::to_owned),
    }
}

/// The whole history of `room` as this peer's node serves it.
async fn history(peer: &mut Peer, room: &str) -> Vec<Seen> {
    let receipt = peer
        .command(
            &format!("/room/{room}/history"),
            &[("x-limit", "500"), ("reply-to", "/temp-queue/h")],
        )
        .await;
    if receipt.get("x-error").is_some() {
        // Not there yet on this node (the error MESSAGE that follows is
        // skipped like any other).
        return Vec::new();
    }
    let mut events = Vec::new();
    loop {
        let f = peer.expect(Command::Message).await;
        match f.get("x-event") {
            Some("history-end") => return events,
            _ if f.get("x-history") == Some("true") => events.push(seen(&f)),
            _ => {}
        }
    }
}

/// This peer's room list, as its node serves it.
async fn list(peer: &mut Peer) -> serde_json::Value {
    peer.command("/rooms/list", &[("reply-to", "/temp-queue/l")])
        .await;
    json(&peer.expect_reply("list").await)
}

/// Polls `peer`'s node until its history of `room` has `n` events.
async fn history_of_len(peer: &mut Peer, room: &str, n: usize) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = history(peer, room).await;
        if events.len() >= n || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A SEND without waiting for anything.
async fn post_async(peer: &mut Peer, room: &str, text: &str, id: &str) {
    let f = frame(
        Command::Send,
        &[
            ("destination", &format!("/room/{room}")),
            ("x-client-msg-id", id),
            ("receipt", id),
        ],
    )
    .body(text.to_owned());
    peer.send(f).await;
}

/// Collects the RECEIPTs of `ids` (any order), skipping other frames;
/// each id's receipt frame.
async fn receipts(peer: &mut Peer, ids: &[String]) -> Vec<(String, Frame)> {
    let mut out = Vec::new();
    while out.len() < ids.len() {
        let f = peer.frame().await;
        if f.command == Command::Receipt {
            let id = f.get("receipt-id").unwrap_or_default().to_owned();
            assert!(ids.contains(&id), "unexpected receipt {f:?}");
            out.push((id, f));
        }
    }
    out
}

#[tokio::test]
async fn posts_on_several_nodes_make_one_history() {
    let bus = MemoryLogBus::new(4);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;

    let created = alice
        .command(
            "/rooms/create",
            &[("x-room-id", "lobby"), ("x-invite", "bob")],
        )
        .await;
    assert_eq!(created.get("x-error"), None, "{created:?}");
    assert_eq!(created.get("x-created"), Some("true"));
    let epoch = created.get("x-epoch").expect("x-epoch").to_owned();
    // The join goes to the log after the creation: bob's node applies
    // both in order, whatever it had applied when the SEND arrived.
    let joined = bob.command("/room/lobby/join", &[]).await;
    assert_eq!(joined.get("x-error"), None, "{joined:?}");
    assert_eq!(joined.get("x-epoch"), Some(epoch.as_str()));

    // Watchers on both nodes only read the timeline.
    let mut watch_a = Peer::connect(&a, "alice").await;
    let mut watch_b = Peer::connect(&b, "bob").await;
    for watcher in [&mut watch_a, &mut watch_b] {
        watcher.join_timeline("t", "lobby", &[]).await;
        watcher.replay().await;
    }

    // Interleaved: one at a time, alternating nodes…
    let mut receipted = Vec::new();
    for i in 0..4 {
        let r = alice
            .post("lobby", &format!("a{i}"), &format!("a-{i}"))
            .await;
        receipted.push((seq(&r), format!("a{i}")));
        let r = bob.post("lobby", &format!("b{i}"), &format!("b-{i}")).await;
        receipted.push((seq(&r), format!("b{i}")));
    }
    // … and in bursts on both nodes at once.
    let a_ids: Vec<String> = (0..20).map(|i| format!("ax-{i}")).collect();
    let b_ids: Vec<String> = (0..20).map(|i| format!("bx-{i}")).collect();
    for (i, (aid, bid)) in a_ids.iter().zip(&b_ids).enumerate() {
        post_async(&mut alice, "lobby", &format!("ax{i}"), aid).await;
        post_async(&mut bob, "lobby", &format!("bx{i}"), bid).await;
    }
    for (peer, ids, tag) in [(&mut alice, &a_ids, "ax"), (&mut bob, &b_ids, "bx")] {
        for (id, r) in receipts(peer, ids).await {
            assert_eq!(r.get("x-error"), None, "{r:?}");
            assert_eq!(r.get("x-epoch"), Some(epoch.as_str()));
            let i = id.rsplit('-').next().expect("index");
            receipted.push((seq(&r), format!("{tag}{i}")));
        }
    }
    receipted.sort();
    let seqs: Vec<u64> = receipted.iter().map(|(s, _)| *s).collect();
    let mut unique = seqs.clone();
    unique.dedup();
    assert_eq!(unique.len(), seqs.len(), "every receipt has its own x-seq");

    // A third node, started now, reads the log from the start.
    let c = node(&bus, "c", None).await;
    let mut carol_view = Peer::connect(&c, "alice").await;
    let total = 4 + 48; // create, owner join, bob invited, bob joins; 48 posts
    let on_a = history_of_len(&mut alice, "lobby", total).await;
    let on_b = history_of_len(&mut bob, "lobby", total).await;
    let on_c = history_of_len(&mut carol_view, "lobby", total).await;
    assert_eq!(on_a.len(), total, "{on_a:#?}");
    assert_eq!(on_a, on_b, "nodes a and b serve the same history");
    assert_eq!(on_a, on_c, "a node that joined later serves it too");
    assert!(on_a.iter().all(|e| e.epoch == epoch));
    assert_eq!(
        on_a.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>()
    );
    for (s, text) in &receipted {
        let event = &on_a[*s as usize - 1];
        assert_eq!((&event.body, event.event.as_str()), (text, "message"));
    }
    let mut stamps: Vec<u64> = on_a
        .iter()
        .map(|e| e.timestamp.parse().expect("x-timestamp"))
        .collect();
    let sorted = {
        let mut s = stamps.clone();
        s.sort_unstable();
        s
    };
    assert_eq!(stamps, sorted, "timestamps never go back");
    stamps.clear();

    // Live subscribers on both nodes saw the same events in the same order.
    let mut live = Vec::new();
    for peer in [&mut watch_a, &mut watch_b] {
        let mut got = Vec::new();
        while got.len() < 48 {
            let f = peer.expect(Command::Message).await;
            if f.get("subscription") == Some("t") && f.get("x-event") == Some("message") {
                got.push(seen(&f));
            }
        }
        live.push(got);
    }
    assert_eq!(live[0], live[1]);
    assert_eq!(live[0], on_a[4..].to_vec());
    c.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn creating_the_same_room_on_two_nodes_creates_it_once() {
    let bus = MemoryLogBus::new(4);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;
    for peer in [&mut alice, &mut bob] {
        let f = frame(
            Command::Send,
            &[
                ("destination", "/rooms/create"),
                ("x-room-id", "contested"),
                ("receipt", "c"),
            ],
        );
        peer.send(f).await;
    }
    let ra = alice.expect(Command::Receipt).await;
    let rb = bob.expect(Command::Receipt).await;
    let errors = [&ra, &rb]
        .iter()
        .filter(|r| r.get("x-error").is_some_and(|e| e.contains("exists")))
        .count();
    assert_eq!(errors, 1, "exactly one creation wins: {ra:?} {rb:?}");

    // Direct rooms: both users create theirs at once, on different nodes.
    let direct = |with: &str| {
        frame(
            Command::Send,
            &[
                ("destination", "/rooms/create"),
                ("x-kind", "direct"),
                ("x-with", with),
                ("receipt", "d"),
            ],
        )
    };
    alice.send(direct("bob")).await;
    bob.send(direct("alice")).await;
    let ra = alice.expect(Command::Receipt).await;
    let rb = bob.expect(Command::Receipt).await;
    assert_eq!(ra.get("x-room"), Some("dm~alice~bob"));
    assert_eq!(rb.get("x-room"), Some("dm~alice~bob"));
    let mut created: Vec<_> = [ra.get("x-created"), rb.get("x-created")].to_vec();
    created.sort();
    assert_eq!(created, [Some("false"), Some("true")], "{ra:?} {rb:?}");
    let ia = alice.command("/room/dm~alice~bob/info", &[]).await;
    let ib = bob.command("/room/dm~alice~bob/info", &[]).await;
    assert!(ia.get("x-epoch").is_some(), "{ia:?}");
    assert_eq!(ia.get("x-epoch"), ib.get("x-epoch"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn read_markers_unread_counts_and_membership_agree_across_nodes() {
    let bus = MemoryLogBus::new(2);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob_b = Peer::connect(&b, "bob").await;
    let mut carol = Peer::connect(&b, "carol").await;
    bob_b.inbox().await;
    carol.inbox().await;
    alice.create_group("team", "bob", false).await;
    // bob's inbox on node b hears of the invite from node a's command.
    let invited = bob_b.expect_event("invited").await;
    assert_eq!(invited.get("x-room"), Some("team"));
    bob_b.command("/room/team/join", &[]).await;
    let mut last = 0;
    for i in 0..3 {
        last = seq(&alice.post("team", &format!("m{i}"), &format!("m{i}")).await);
    }
    // Unread counts pushed to bob's inbox on node b.
    loop {
        let u = bob_b.expect_event("unread").await;
        if u.get("x-unread") == Some("3") {
            break;
        }
    }
    // bob's second session, on node a, sees the same counts.
    let mut bob_a = Peer::connect(&a, "bob").await;
    let page = list(&mut bob_a).await;
    assert_eq!(page["rooms"][0]["unread"], 3, "{page}");
    // bob reads on node b; node a learns it through the log.
    let read = bob_b
        .command("/room/team/read", &[("x-seq", &last.to_string())])
        .await;
    assert_eq!(read.get("x-unread"), Some("0"), "{read:?}");
    assert_eq!(read.get("x-read-seq"), Some(last.to_string().as_str()));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = list(&mut bob_a).await;
        if page["rooms"][0]["unread"] == 0 && page["rooms"][0]["read_seq"] == last {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "node a: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Membership: alice (node a) invites carol (node b), carol joins on b,
    // alice kicks bob on a: every node knows.
    alice
        .command("/room/team/invite", &[("x-user", "carol")])
        .await;
    assert_eq!(
        carol.expect_event("invited").await.get("x-room"),
        Some("team")
    );
    let joined = carol.command("/room/team/join", &[]).await;
    assert_eq!(joined.get("x-error"), None, "{joined:?}");
    let kicked = alice.command("/room/team/kick", &[("x-user", "bob")]).await;
    assert_eq!(kicked.get("x-error"), None, "{kicked:?}");
    assert_eq!(
        bob_b.expect_event("kicked").await.get("x-room"),
        Some("team")
    );
    for peer in [&mut alice, &mut carol] {
        let members = loop {
            peer.command("/room/team/info", &[("reply-to", "/temp-queue/i")])
                .await;
            let info = json(&peer.expect_reply("info").await);
            let members: Vec<(String, String)> = info["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| {
                    (
                        m["user"].as_str().unwrap_or_default().to_owned(),
                        m["role"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            if members.len() == 2 {
                break members;
            }
        };
        assert_eq!(
            members,
            [
                ("alice".to_owned(), "owner".to_owned()),
                ("carol".to_owned(), "member".to_owned())
            ]
        );
    }
    // bob, kicked through node a, may no longer post through node b.
    let refused = bob_b.post("team", "still here?", "x").await;
    assert!(
        refused
            .get("x-error")
            .is_some_and(|e| e.contains("not a member")),
        "{refused:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_client_of_a_dead_node_resumes_on_another_node() {
    let bus = MemoryLogBus::new(4);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;
    alice.create_group("r", "bob", false).await;
    bob.command("/room/r/join", &[]).await;
    alice.join_timeline("t", "r", &[]).await;
    let (_, marker) = alice.replay().await;
    let epoch = marker.get("x-epoch").expect("epoch").to_owned();
    let cursor = seq(&alice.post("r", "seen", "p-0").await);
    alice.expect_event("message").await;
    // Posts alice has receipts for, then a post by bob she did not see.
    let mut receipted = Vec::new();
    for i in 1..=5 {
        let r = alice.post("r", &format!("p{i}"), &format!("p-{i}")).await;
        assert_eq!(r.get("x-error"), None);
        receipted.push(seq(&r));
    }
    bob.post("r", "while you were away", "b-1").await;
    // Node a dies; alice reconnects to node b and resumes from her cursor.
    drop(alice);
    a.shutdown().await;
    let mut alice = Peer::connect(&b, "alice").await;
    let since = cursor.to_string();
    alice
        .join_timeline("t", "r", &[("x-since-seq", &since), ("x-epoch", &epoch)])
        .await;
    let (replayed, marker) = alice.replay().await;
    assert_eq!(marker.get("x-recovered"), Some("true"), "{marker:?}");
    let seqs: Vec<u64> = replayed.iter().map(seq).collect();
    for s in &receipted {
        assert!(seqs.contains(s), "receipted {s} is replayed: {seqs:?}");
    }
    assert_eq!(
        body(replayed.last().expect("replayed")),
        "while you were away"
    );
    // Re-sending a receipted post through the new node is no duplicate.
    let again = alice.post("r", "p5", "p-5").await;
    assert_eq!(again.get("x-duplicate"), Some("true"));
    assert_eq!(seq(&again), *receipted.last().expect("receipted"));
    b.shutdown().await;
}

#[tokio::test]
async fn a_restarted_node_resumes_from_its_stored_offsets() {
    let bus = MemoryLogBus::new(2);
    let dir = common::scratch("cluster-restart");
    let a = node(&bus, "a", Some(&dir)).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;
    // Several rooms, so rooms share partitions.
    for room in ["r1", "r2", "r3", "r4", "r5"] {
        alice.create_group(room, "bob", true).await;
        alice.post(room, "before", &format!("{room}-0")).await;
    }
    drop(alice);
    a.shutdown().await;
    // Node a is down; the others go on.
    for room in ["r1", "r2", "r3", "r4", "r5"] {
        bob.command(&format!("/room/{room}/join"), &[]).await;
        bob.post(room, "while a was down", &format!("{room}-b"))
            .await;
    }
    let a = node(&bus, "a", Some(&dir)).await;
    let mut alice = Peer::connect(&a, "alice").await;
    for room in ["r1", "r2", "r3", "r4", "r5"] {
        let on_b = history(&mut bob, room).await;
        let on_a = history_of_len(&mut alice, room, on_b.len()).await;
        assert_eq!(on_a, on_b, "room {room}: the same history, nothing twice");
        let r = alice.post(room, "after", &format!("{room}-1")).await;
        assert_eq!(seq(&r), on_b.len() as u64 + 1, "{r:?}");
    }
    drop(alice);
    a.shutdown().await;
    // Restarted once more with nothing new: still no duplicates.
    let a = node(&bus, "a", Some(&dir)).await;
    let mut alice = Peer::connect(&a, "alice").await;
    for room in ["r1", "r2", "r3", "r4", "r5"] {
        let on_b = history_of_len(&mut bob, room, 7).await;
        let on_a = history(&mut alice, room).await;
        assert_eq!(on_a, on_b, "room {room} after the second restart");
    }
    drop(alice);
    a.shutdown().await;
    b.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn presence_and_typing_cross_nodes() {
    let bus = MemoryLogBus::new(2);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;
    alice.create_group("p", "bob", false).await;
    bob.command("/room/p/join", &[]).await;
    alice
        .request(frame(
            Command::Subscribe,
            &[("id", "pr"), ("destination", "/room/p/presence")],
        ))
        .await;
    alice
        .request(frame(
            Command::Subscribe,
            &[("id", "ty"), ("destination", "/room/p/typing")],
        ))
        .await;
    // bob opens the room on node b: alice, on node a, sees him come.
    bob.join_timeline("t", "p", &[]).await;
    loop {
        let m = alice.expect_event("presence").await;
        if m.get("x-presence") == Some("join") {
            assert_eq!(m.get("x-user"), Some("bob"));
            assert_eq!(json(&m)["online"], serde_json::json!(["bob"]));
            break;
        }
    }
    bob.command("/room/p/typing", &[]).await;
    loop {
        let m = alice.expect_event("typing").await;
        if json(&m)["typing"] == serde_json::json!(["bob"]) {
            break;
        }
    }
    // bob's node dies: when it comes back, alice's node forgets whom it
    // showed.
    drop(bob);
    b.shutdown().await;
    let b = node(&bus, "b", None).await;
    loop {
        let m = alice.expect_event("presence").await;
        if m.get("x-presence") == Some("leave") {
            assert_eq!(m.get("x-user"), Some("bob"));
            break;
        }
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn edits_reactions_and_redactions_agree_across_nodes() {
    let bus = MemoryLogBus::new(3);
    let a = node(&bus, "a", None).await;
    let b = node(&bus, "b", None).await;
    let mut alice = Peer::connect(&a, "alice").await;
    let mut bob = Peer::connect(&b, "bob").await;
    alice.create_group("rel", "bob", false).await;
    bob.command("/room/rel/join", &[]).await;
    let first = seq(&alice.post("rel", "hello", "h").await).to_string();
    let edit = alice
        .command("/room/rel/edit", &[("x-relates-to", &first)])
        .await;
    assert_eq!(edit.get("x-error"), None, "{edit:?}");
    let react = [("x-relates-to", first.as_str()), ("x-reaction", "+1")];
    let reaction = bob.command("/room/rel/react", &react).await;
    assert_eq!(reaction.get("x-error"), None, "{reaction:?}");
    // The same reaction again, through the other node: a duplicate.
    let mut bob_a = Peer::connect(&a, "bob").await;
    let again = bob_a.command("/room/rel/react", &react).await;
    assert_eq!(again.get("x-duplicate"), Some("true"), "{again:?}");
    assert_eq!(seq(&again), seq(&reaction));
    let redact = bob
        .command("/room/rel/redact", &[("x-relates-to", &first)])
        .await;
    assert!(
        redact
            .get("x-error")
            .is_some_and(|e| e.contains("only the sender")),
        "bob may not redact alice's message: {redact:?}"
    );
    let redact = alice
        .command("/room/rel/redact", &[("x-relates-to", &first)])
        .await;
    assert_eq!(redact.get("x-error"), None, "{redact:?}");
    let total = seq(&redact) as usize;
    let on_a = history_of_len(&mut alice, "rel", total).await;
    let on_b = history_of_len(&mut bob, "rel", total).await;
    assert_eq!(on_a, on_b);
    let message = &on_a[first.parse::<usize>().expect("seq") - 1];
    assert_eq!(
        message.redacted_by.as_deref(),
        Some(seq(&redact).to_string().as_str())
    );
    assert_eq!(message.body, "");
    a.shutdown().await;
    b.shutdown().await;
}

/// Reads timeline `sub` (after its SUBSCRIBE's RECEIPT) up to and with its
/// `replay-end` marker, waiting up to `wait` for each frame: (replayed
/// events, marker).
async fn replay_on(peer: &mut Peer, sub: &str, wait: Duration) -> (Vec<Frame>, Frame) {
    let mut replayed = Vec::new();
    loop {
        let f = peer
            .try_frame(wait)
            .await
            .unwrap_or_else(|| panic!("nothing on {sub} within {wait:?}"))
            .expect("open");
        if f.command != Command::Message || f.get("subscription") != Some(sub) {
            continue;
        }
        if f.get("x-event") == Some("replay-end") {
            return (replayed, f);
        }
        replayed.push(f);
    }
}

#[tokio::test]
async fn a_resume_beyond_a_lagging_node_waits_until_it_caught_up() {
    let bus = MemoryLogBus::new(2);
    let a = node(&bus, "a", None).await;
    let (backend, gate) = gated(&bus, "b", true);
    let b = start_node(backend, ChatPlugin::new(common::unlimited())).await;
    let mut alice = Peer::connect(&a, "alice").await;
    alice.create_group("lag", "bob", false).await;
    let mut bob_b = Peer::connect(&b, "bob").await;
    let joined = bob_b.command("/room/lag/join", &[]).await;
    assert_eq!(joined.get("x-error"), None, "{joined:?}");
    let epoch = joined.get("x-epoch").expect("x-epoch").to_owned();
    let first = seq(&alice.post("lag", "m0", "m0").await);

    // Node b stops reading the log (it lags); node a goes on.
    gate.send_replace(false);
    let mut posted = Vec::new();
    for i in 1..=5 {
        let r = alice.post("lag", &format!("m{i}"), &format!("m{i}")).await;
        assert_eq!(r.get("x-error"), None, "{r:?}");
        posted.push(seq(&r));
    }
    let head = *posted.last().expect("posted");
    // A client that saw up to the third post on node a resumes on b: b
    // has not applied it yet, so the replay waits…
    let cursor = posted[2];
    let since = cursor.to_string();
    let resume = [("x-since-seq", since.as_str()), ("x-epoch", epoch.as_str())];
    bob_b.join_timeline("t", "lag", &resume).await;
    // … and a resume that ends before it gets an answer is dropped.
    bob_b.join_timeline("gone", "lag", &resume).await;
    bob_b
        .request(frame(Command::Unsubscribe, &[("id", "gone")]))
        .await;
    bob_b
        .expect_silence_on("t", Duration::from_millis(300))
        .await;
    // A resume b can serve is not held up.
    let since_first = first.to_string();
    bob_b
        .join_timeline(
            "now",
            "lag",
            &[("x-since-seq", &since_first), ("x-epoch", &epoch)],
        )
        .await;
    let (replayed, marker) = replay_on(&mut bob_b, "now", WAIT).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(marker.get("x-recovered"), Some("true"), "{marker:?}");
    assert_eq!(marker.get("x-head-seq"), Some(since_first.as_str()));

    // b catches up: the held resume replays from the cursor, whole.
    gate.send_replace(true);
    let (replayed, marker) = replay_on(&mut bob_b, "t", WAIT).await;
    assert_eq!(marker.get("x-recovered"), Some("true"), "{marker:?}");
    assert_eq!(marker.get("x-epoch"), Some(epoch.as_str()));
    let marker_head: u64 = marker
        .get("x-head-seq")
        .and_then(|h| h.parse().ok())
        .expect("x-head-seq");
    assert!(marker_head >= cursor, "{marker:?}");
    let mut seqs: Vec<u64> = replayed.iter().map(seq).collect();
    assert_eq!(
        seqs,
        (cursor + 1..=marker_head).collect::<Vec<_>>(),
        "the replay: {marker:?}"
    );
    // What b applies after the replay follows live, without a gap.
    while seqs.last().copied().unwrap_or(cursor) < head {
        let f = bob_b.expect(Command::Message).await;
        if f.get("subscription") == Some("t") && f.get("x-event") == Some("message") {
            seqs.push(seq(&f));
        }
    }
    assert_eq!(seqs, (cursor + 1..=head).collect::<Vec<_>>());
    // The dropped resume got nothing.
    bob_b
        .expect_silence_on("gone", Duration::from_millis(200))
        .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_resume_beyond_a_node_that_does_not_catch_up_is_refused_after_a_while() {
    let bus = MemoryLogBus::new(2);
    let a = node(&bus, "a", None).await;
    let (backend, gate) = gated(&bus, "b", true);
    let b = start_node(backend, ChatPlugin::new(common::unlimited())).await;
    let mut alice = Peer::connect(&a, "alice").await;
    alice.create_group("stuck", "bob", false).await;
    let mut bob_b = Peer::connect(&b, "bob").await;
    let joined = bob_b.command("/room/stuck/join", &[]).await;
    let epoch = joined.get("x-epoch").expect("x-epoch").to_owned();
    let applied = seq(&joined);
    gate.send_replace(false);
    let cursor = seq(&alice.post("stuck", "unseen on b", "u").await);
    let since = cursor.to_string();
    let asked = tokio::time::Instant::now();
    bob_b
        .join_timeline(
            "t",
            "stuck",
            &[("x-since-seq", &since), ("x-epoch", &epoch)],
        )
        .await;
    // The wait is bounded: the answer is today's, a resume that cannot
    // be served whole.
    let (replayed, marker) = replay_on(&mut bob_b, "t", Duration::from_secs(15)).await;
    let waited = asked.elapsed();
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(marker.get("x-recovered"), Some("false"), "{marker:?}");
    assert_eq!(marker.get("x-head-seq"), Some(applied.to_string().as_str()));
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    // The subscription is attached as after any replay: what b applies
    // next arrives live.
    gate.send_replace(true);
    let live = loop {
        let f = bob_b.expect(Command::Message).await;
        if f.get("subscription") == Some("t") && f.get("x-event") == Some("message") {
            break f;
        }
    };
    assert_eq!(seq(&live), cursor);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_node_started_again_answers_its_new_commands_with_their_own_records() {
    const FIRST_LIFE: usize = 6;
    const SECOND_LIFE: usize = 5;
    let bus = MemoryLogBus::new(2);
    let a = node(&bus, "a", None).await;
    let (first_hook, mut first_told) = mpsc::unbounded_channel();
    let plugin =
        ChatPlugin::new(common::unlimited()).with_offline_hook(Arc::new(Recorder(first_hook)));
    let c = start_node(bus.node("c"), plugin).await;
    let mut alice = Peer::connect(&a, "alice").await;
    alice.create_group("again", "bob,carol", false).await;
    let mut bob = Peer::connect(&a, "bob").await;
    bob.command("/room/again/join", &[]).await;
    drop(bob);
    let mut carol = Peer::connect(&c, "carol").await;
    let joined = carol.command("/room/again/join", &[]).await;
    let epoch = joined.get("x-epoch").expect("x-epoch").to_owned();
    let mut last = 0;
    for i in 0..FIRST_LIFE {
        let r = carol
            .post("again", &format!("first life {i}"), &format!("a-{i}"))
            .await;
        assert_eq!(r.get("x-error"), None, "{r:?}");
        last = seq(&r);
    }
    // The first life told its offline hook about its posts.
    for _ in 0..FIRST_LIFE {
        tokio::time::timeout(WAIT, first_told.recv())
            .await
            .expect("first-life notice")
            .expect("open");
    }
    drop(carol);
    c.shutdown().await;

    // Node c starts again under its id, with an empty store: it reads the
    // whole log again, its first life's records included. It is held
    // before it applies anything while its new client sends posts, whose
    // request ids are those of the first life's posts.
    let (backend, gate) = gated(&bus, "c", false);
    let (hook, mut told) = mpsc::unbounded_channel();
    let plugin = ChatPlugin::new(common::unlimited()).with_offline_hook(Arc::new(Recorder(hook)));
    let c = start_node(backend, plugin).await;
    let mut carol = Peer::connect(&c, "carol").await;
    let ids: Vec<String> = (0..SECOND_LIFE).map(|i| format!("b-{i}")).collect();
    for id in &ids {
        carol
            .send(
                frame(
                    Command::Send,
                    &[
                        ("destination", "/room/again"),
                        ("x-client-msg-id", id),
                        ("receipt", id),
                    ],
                )
                .body(format!("second life {id}")),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    gate.send_replace(true);
    let mut answers = Vec::new();
    while answers.len() < SECOND_LIFE {
        let f = carol.frame().await;
        if f.command == Command::Receipt {
            answers.push(f);
        }
    }
    let head = last + SECOND_LIFE as u64;
    let on_a = history_of_len(&mut alice, "again", head as usize).await;
    let mut seqs = Vec::new();
    for r in &answers {
        let id = r.get("receipt-id").expect("receipt-id");
        assert_eq!(r.get("x-error"), None, "{r:?}");
        assert_eq!(r.get("x-duplicate"), None, "{r:?}");
        assert_eq!(r.get("x-epoch"), Some(epoch.as_str()), "{r:?}");
        let s = seq(r);
        assert!(s > last, "{id} answered by an old record: {r:?}");
        let event = &on_a[s as usize - 1];
        assert_eq!(
            (event.sender.as_str(), event.body.as_str()),
            ("carol", format!("second life {id}").as_str()),
            "the RECEIPT of {id} names its own post: {r:?}"
        );
        seqs.push(s);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (last + 1..=head).collect::<Vec<_>>());
    let on_c = history_of_len(&mut carol, "again", head as usize).await;
    assert_eq!(on_c, on_a, "the restarted node rebuilt the same room");

    // Rebuilding does not tell the offline hook about the first life's
    // posts again: it hears of the new posts only.
    let mut notices = Vec::new();
    for _ in 0..SECOND_LIFE {
        let notice = tokio::time::timeout(WAIT, told.recv())
            .await
            .expect("notice")
            .expect("open");
        notices.push(notice.seq);
    }
    assert_eq!(notices, (last + 1..=head).collect::<Vec<_>>());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), told.recv())
            .await
            .is_err(),
        "nothing more"
    );
    a.shutdown().await;
    c.shutdown().await;
}
