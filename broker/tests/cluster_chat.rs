//! The chat plugin in cluster mode, end to end: a real Kafka-protocol
//! server (Tansu, see `common/tansu.rs`) and three real `stompede`
//! processes on loopback, replicating chat rooms through the
//! `stompede.plugin.chat` topic.
//!
//! - A room with members on three nodes: posts from every node, interleaved
//!   and in bursts, get one order (the partition's); every node serves the
//!   same history (seq, epoch, sender, timestamp, body); every member's live
//!   timeline is that history; read markers, unread counts, membership,
//!   receipts and inbox notices agree across nodes; presence and typing
//!   cross nodes.
//! - A node killed with SIGKILL while its client posts with receipts: the
//!   client resumes on another node with `x-since-seq` and finds every
//!   receipted post, once; a subscriber on a third node saw them all.
//! - A node started again under its id (empty store: it reads the whole
//!   log again) answers its new clients' commands with their own records,
//!   not with the records of its first life.
//!
//! The scenarios run one at a time (each starts Kafka and three nodes) and
//! each is bounded; a failure prints the tail of every process's log.

mod common;

use common::tansu::Tansu;
use common::{frame, BrokerProcess, Peer};
use futures_util::SinkExt;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stompede::codec::{Command, Frame};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Partitions of the test clusters' Kafka topics.
const PARTITIONS: u32 = 4;
/// How long one cross-node effect may take before a test gives up.
const CLUSTER_WAIT: Duration = Duration::from_secs(20);
/// How long one scenario may take once its cluster runs.
const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

/// One scenario at a time: each runs Kafka and three brokers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// The cluster

/// Tansu and three `stompede` nodes; on a failure, prints their logs.
struct Cluster {
    nodes: Vec<BrokerProcess>,
    /// Each node's configuration (to start it again).
    configs: Vec<String>,
    kafka: Tansu,
}

impl Cluster {
    async fn start() -> Cluster {
        let kafka = Tansu::start().await;
        let mut nodes = Vec::new();
        let mut configs = Vec::new();
        for i in 1..=3 {
            // No chat rate limits: the scenarios post in bursts.
            let config = format!(
                "[cluster]\nenabled = true\nnode_id = \"chat-node-{i}\"\n\
                 bootstrap_servers = \"{}\"\npartitions = {PARTITIONS}\n\n\
                 [chat]\npost_rate = 0\nread_rate = 0\ntyping_rate = 0\n",
                kafka.bootstrap()
            );
            nodes.push(BrokerProcess::spawn_with_admin(&config).await);
            configs.push(config);
        }
        Cluster {
            nodes,
            configs,
            kafka,
        }
    }

    /// A session of `user` on node `node` (0-based).
    async fn client(&self, node: usize, user: &str) -> Client {
        let addr = self.nodes[node].tcp;
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{user} cannot reach node {}: {e}", node + 1));
        let mut peer = Peer::new(stream);
        peer.connect("1.2", Some(user)).await;
        Client {
            peer,
            kept: VecDeque::new(),
            requests: 0,
            user: user.to_owned(),
            who: format!("{user}@node-{}", node + 1),
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (i, node) in self.nodes.iter().enumerate() {
            eprintln!(
                "---- chat-node-{} (pid {}), last log lines:\n{}",
                i + 1,
                node.pid(),
                tail(&node.log(), 40)
            );
        }
        eprintln!(
            "---- tansu, last log lines:\n{}",
            tail(&self.kafka.log(), 20)
        );
    }
}

/// A fresh cluster, once no other scenario runs (keep the guard until the
/// cluster is gone).
async fn serial_cluster() -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    let serial = SERIAL.lock().await;
    let started = Instant::now();
    let cluster = Cluster::start().await;
    eprintln!("cluster up in {:?}", started.elapsed());
    (serial, cluster)
}

/// Runs a scenario, bounded by [`SCENARIO_LIMIT`]. Its cluster outlives
/// it, so a timeout (a panic here) still prints the logs.
async fn bounded(name: &str, scenario: impl Future<Output = ()>) {
    let started = Instant::now();
    if tokio::time::timeout(SCENARIO_LIMIT, scenario)
        .await
        .is_err()
    {
        panic!("{name}: the scenario took longer than {SCENARIO_LIMIT:?}");
    }
    eprintln!("{name}: done in {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// A STOMP session

/// A raw STOMP session that keeps every frame it was not looking for.
struct Client {
    peer: Peer<TcpStream>,
    kept: VecDeque<Frame>,
    requests: u64,
    user: String,
    who: String,
}

impl Client {
    async fn send(&mut self, f: Frame) {
        self.peer.send(f).await;
    }

    /// The first frame (kept or new) that `pred` accepts; other frames are
    /// kept, in order. Panics after [`CLUSTER_WAIT`] or on an ERROR.
    async fn next_where(&mut self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        if let Some(i) = self.kept.iter().position(&pred) {
            return self.kept.remove(i).expect("kept frame");
        }
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.peer.try_frame(left).await {
                Some(Some(f)) => {
                    assert_ne!(
                        f.command,
                        Command::Error,
                        "{}: ERROR while waiting for {what}: {f:?}",
                        self.who
                    );
                    if pred(&f) {
                        return f;
                    }
                    self.kept.push_back(f);
                }
                Some(None) => panic!("{}: connection closed while waiting for {what}", self.who),
                None => panic!(
                    "{}: no {what} within {CLUSTER_WAIT:?}; {} other frames kept, the last: {:?}",
                    self.who,
                    self.kept.len(),
                    self.kept.back()
                ),
            }
        }
    }

    /// Sends `f` with a fresh receipt id; its RECEIPT.
    async fn request(&mut self, f: Frame) -> Frame {
        self.requests += 1;
        let id = format!("q-{}", self.requests);
        self.send(f.header("receipt", id.clone())).await;
        self.next_where(&format!("RECEIPT {id}"), |f| {
            f.command == Command::Receipt && f.get("receipt-id") == Some(id.as_str())
        })
        .await
    }

    /// A SEND with headers; its RECEIPT.
    async fn command(&mut self, destination: &str, headers: &[(&str, &str)]) -> Frame {
        let mut f = frame(Command::Send, &[("destination", destination)]);
        for (n, v) in headers {
            f = f.header(n.to_string(), v.to_string());
        }
        self.request(f).await
    }

    /// A command that must succeed; its RECEIPT.
    async fn ok(&mut self, destination: &str, headers: &[(&str, &str)]) -> Frame {
        let r = self.command(destination, headers).await;
        assert_eq!(
            r.get("x-error"),
            None,
            "{}: {destination} {headers:?} refused: {r:?}",
            self.who
        );
        r
    }

    /// A SUBSCRIBE with headers, confirmed by its RECEIPT.
    async fn subscribe(&mut self, id: &str, destination: &str, headers: &[(&str, &str)]) {
        let mut f = frame(
            Command::Subscribe,
            &[("id", id), ("destination", destination)],
        );
        for (n, v) in headers {
            f = f.header(n.to_string(), v.to_string());
        }
        let r = self.request(f).await;
        assert_eq!(
            r.get("x-error"),
            None,
            "{}: SUBSCRIBE {destination}: {r:?}",
            self.who
        );
    }

    /// Subscribes `sub` to a room's timeline; the replayed events and the
    /// `replay-end` marker.
    async fn timeline(
        &mut self,
        sub: &str,
        room: &str,
        headers: &[(&str, &str)],
    ) -> (Vec<Event>, Frame) {
        self.subscribe(sub, &format!("/room/{room}"), headers).await;
        let mut replayed = Vec::new();
        loop {
            let f = self.timeline_frame(sub).await;
            assert_ne!(
                f.get("x-event"),
                Some("denied"),
                "{}: timeline refused: {f:?}",
                self.who
            );
            if f.get("x-event") == Some("replay-end") {
                return (replayed, f);
            }
            replayed.push(event(&f));
        }
    }

    /// The next MESSAGE of subscription `sub`.
    async fn timeline_frame(&mut self, sub: &str) -> Frame {
        let what = format!("a MESSAGE on subscription {sub}");
        self.next_where(&what, |f| {
            f.command == Command::Message && f.get("subscription") == Some(sub)
        })
        .await
    }

    /// Reads timeline `sub`, which is at seq `from` plus the events in
    /// `got`, until it reached `head`; what it got.
    async fn timeline_until(
        &mut self,
        sub: &str,
        from: u64,
        mut got: Vec<Event>,
        head: u64,
    ) -> Vec<Event> {
        while got.last().map_or(from, |e| e.seq) < head {
            let f = self.timeline_frame(sub).await;
            got.push(event(&f));
        }
        got
    }

    /// The room's whole history as this session's node serves it; `None`
    /// while that node does not know the room.
    async fn history(&mut self, room: &str) -> Option<Vec<Event>> {
        let r = self
            .command(
                &format!("/room/{room}/history"),
                &[("x-limit", "500"), ("reply-to", "/temp-queue/history")],
            )
            .await;
        if r.get("x-error").is_some() {
            // (The error MESSAGE that follows stays kept: nobody asks.)
            return None;
        }
        let mut events = Vec::new();
        loop {
            let f = self
                .next_where("a history page", |f| {
                    f.command == Command::Message
                        && (f.get("x-history") == Some("true")
                            || f.get("x-event") == Some("history-end"))
                })
                .await;
            if f.get("x-event") == Some("history-end") {
                assert_eq!(f.get("x-has-more"), Some("false"), "one page: {f:?}");
                return Some(events);
            }
            events.push(event(&f));
        }
    }

    /// Polls this session's node until its history of `room` reaches
    /// `head`.
    async fn history_until(&mut self, room: &str, head: u64) -> Vec<Event> {
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let events = self.history(room).await.unwrap_or_default();
            if events.last().map_or(0, |e| e.seq) >= head {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the node's history of {room} stops at {:?}, not {head}",
                self.who,
                events.last()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// This user's entry for `room` in `/rooms/list`, from this node.
    async fn listed(&mut self, room: &str) -> Option<Value> {
        self.ok(
            "/rooms/list",
            &[("x-limit", "200"), ("reply-to", "/temp-queue/list")],
        )
        .await;
        let reply = self
            .next_where("the /rooms/list reply", |f| {
                f.get("x-event") == Some("reply") && f.get("x-command") == Some("list")
            })
            .await;
        json(&reply)["rooms"]
            .as_array()
            .and_then(|rooms| rooms.iter().find(|r| r["room"] == room).cloned())
    }

    /// `/room/{room}/info` from this node.
    async fn info(&mut self, room: &str) -> Value {
        self.ok(
            &format!("/room/{room}/info"),
            &[("reply-to", "/temp-queue/info")],
        )
        .await;
        let reply = self
            .next_where("the info reply", |f| {
                f.get("x-event") == Some("reply") && f.get("x-command") == Some("info")
            })
            .await;
        json(&reply)
    }
}

/// A post to `room` with a client message id (no receipt yet).
fn post_frame(room: &str, text: &str, id: &str) -> Frame {
    frame(
        Command::Send,
        &[
            ("destination", &format!("/room/{room}")),
            ("x-client-msg-id", id),
            ("content-type", "text/plain"),
        ],
    )
    .body(text.to_owned())
}

fn json(f: &Frame) -> Value {
    serde_json::from_slice(&f.body).unwrap_or_else(|e| panic!("not JSON ({e}): {f:?}"))
}

fn text(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

/// The `x-seq` of a frame.
fn seq_of(f: &Frame) -> u64 {
    f.get("x-seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no x-seq: {f:?}"))
}

/// What must be the same on every node about one timeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Event {
    seq: u64,
    epoch: String,
    event: String,
    sender: String,
    timestamp: u64,
    client_msg_id: Option<String>,
    body: String,
}

fn event(f: &Frame) -> Event {
    let h = |n| f.get(n).unwrap_or_default().to_owned();
    Event {
        seq: seq_of(f),
        epoch: h("x-epoch"),
        event: h("x-event"),
        sender: h("x-sender"),
        timestamp: f
            .get("x-timestamp")
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no x-timestamp: {f:?}")),
        client_msg_id: f.get("x-client-msg-id").map(str::to_owned),
        body: text(f),
    }
}

/// Asserts two event lists are equal, naming the first difference.
fn assert_same(got: &[Event], expected: &[Event], what: &str) {
    if got == expected {
        return;
    }
    let first = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    panic!(
        "{what}: {} events where {} were expected; first difference at index {first}:\n  \
         got      {:?}\n  expected {:?}",
        got.len(),
        expected.len(),
        got.get(first),
        expected.get(first)
    );
}

/// Asserts the events are numbered `from, from+1, …` (no gap, nothing
/// twice).
fn assert_gapless(events: &[Event], from: u64, what: &str) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.seq,
            from + i as u64,
            "{what}: a gap or a duplicate at index {i}: {:?}",
            events.iter().map(|e| e.seq).collect::<Vec<_>>()
        );
    }
}

/// A post that was receipted.
#[derive(Debug, Clone)]
struct Post {
    id: String,
    sender: String,
    body: String,
    seq: u64,
}

/// Checks a post's RECEIPT; its `x-seq`.
fn receipted_seq(r: &Frame, epoch: &str, who: &str) -> u64 {
    assert_eq!(r.get("x-error"), None, "{who}: post refused: {r:?}");
    assert_eq!(r.get("x-epoch"), Some(epoch), "{who}: post receipt: {r:?}");
    assert_eq!(r.get("x-duplicate"), None, "{who}: post receipt: {r:?}");
    seq_of(r)
}

// ---------------------------------------------------------------------------
// A room with members on three nodes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_members_on_three_nodes_is_one_room() {
    let (_serial, cluster) = serial_cluster().await;
    bounded("one room on three nodes", one_room_on_three_nodes(&cluster)).await;
}

async fn one_room_on_three_nodes(cluster: &Cluster) {
    const ROOM: &str = "team";
    const USERS: [&str; 3] = ["alice", "bob", "carol"];
    // alice on node 1, bob on node 2, carol on node 3.
    let mut members = Vec::new();
    for (node, user) in USERS.iter().enumerate() {
        members.push(cluster.client(node, user).await);
    }
    let created = members[0]
        .ok(
            "/rooms/create",
            &[
                ("x-room-id", ROOM),
                ("x-name", "Team"),
                ("x-invite", "bob,carol"),
            ],
        )
        .await;
    assert_eq!(created.get("x-created"), Some("true"), "{created:?}");
    let epoch = created.get("x-epoch").expect("x-epoch").to_owned();
    for member in &mut members[1..] {
        // The join record follows the creation in the room's partition:
        // the joiner's node applies both, in order.
        let joined = member.ok(&format!("/room/{ROOM}/join"), &[]).await;
        assert_eq!(joined.get("x-epoch"), Some(epoch.as_str()), "{joined:?}");
    }

    // Every member watches the timeline in a second session on their
    // node, from its first event: replay, then live.
    let mut watchers = Vec::new();
    for (node, user) in USERS.iter().enumerate() {
        let mut watcher = cluster.client(node, user).await;
        let (replayed, marker) = watcher.timeline("t", ROOM, &[("x-history", "500")]).await;
        assert_eq!(marker.get("x-recovered"), Some("true"), "{marker:?}");
        assert_eq!(marker.get("x-epoch"), Some(epoch.as_str()), "{marker:?}");
        assert_gapless(&replayed, 1, &format!("{}'s replay", watcher.who));
        watchers.push((watcher, replayed));
    }

    // Posts from the three nodes, one at a time: each is sent once the
    // previous one was receipted, so their order is known.
    let mut posts = Vec::new();
    for round in 0..5 {
        for member in &mut members {
            let id = format!("{}-{round}", member.user);
            let body = format!("{} says {round}", member.user);
            let r = member.request(post_frame(ROOM, &body, &id)).await;
            let seq = receipted_seq(&r, &epoch, &member.who);
            posts.push(Post {
                id,
                sender: member.user.clone(),
                body,
                seq,
            });
        }
    }
    let seqs: Vec<u64> = posts.iter().map(|p| p.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "a post sent after another's RECEIPT comes after it: {seqs:?}"
    );

    // Bursts on the three nodes at once.
    const BURST: usize = 12;
    for i in 0..BURST {
        for member in &mut members {
            let id = format!("{}-burst-{i}", member.user);
            let body = format!("{} bursts {i}", member.user);
            member
                .send(post_frame(ROOM, &body, &id).header("receipt", id.clone()))
                .await;
        }
    }
    for member in &mut members {
        let mut mine = Vec::new();
        for i in 0..BURST {
            let id = format!("{}-burst-{i}", member.user);
            let r = member
                .next_where(&format!("RECEIPT {id}"), |f| {
                    f.command == Command::Receipt && f.get("receipt-id") == Some(id.as_str())
                })
                .await;
            let seq = receipted_seq(&r, &epoch, &member.who);
            mine.push(seq);
            posts.push(Post {
                id,
                sender: member.user.clone(),
                body: format!("{} bursts {i}", member.user),
                seq,
            });
        }
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "{}: one session's posts keep their order: {mine:?}",
            member.who
        );
    }
    // A last post by alice: the head is not bob's own post (his read
    // marker below must move).
    let r = members[0]
        .request(post_frame(ROOM, "last word", "alice-last"))
        .await;
    let head = receipted_seq(&r, &epoch, &members[0].who);
    posts.push(Post {
        id: "alice-last".into(),
        sender: "alice".into(),
        body: "last word".into(),
        seq: head,
    });
    let mut unique: Vec<u64> = posts.iter().map(|p| p.seq).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), posts.len(), "every RECEIPT has its own x-seq");
    assert_eq!(unique.last(), Some(&head), "the last post is the head");

    // Every node serves the same history.
    let mut histories = Vec::new();
    for member in &mut members {
        histories.push(member.history_until(ROOM, head).await);
    }
    let reference = histories[0].clone();
    assert_gapless(&reference, 1, "node 1's history");
    assert_eq!(reference.len() as u64, head, "nothing after the last post");
    for (i, history) in histories.iter().enumerate().skip(1) {
        assert_same(
            history,
            &reference,
            &format!("node {}'s history against node 1's", i + 1),
        );
    }
    assert!(
        reference.iter().all(|e| e.epoch == epoch),
        "one epoch: {reference:#?}"
    );
    assert!(
        reference
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp),
        "timestamps never go back: {:?}",
        reference.iter().map(|e| e.timestamp).collect::<Vec<_>>()
    );
    for post in &posts {
        let e = &reference[post.seq as usize - 1];
        assert_eq!(
            (
                e.event.as_str(),
                e.sender.as_str(),
                e.body.as_str(),
                e.client_msg_id.as_deref()
            ),
            (
                "message",
                post.sender.as_str(),
                post.body.as_str(),
                Some(post.id.as_str())
            ),
            "the RECEIPT's x-seq names the post: {post:?}"
        );
    }
    let messages = reference.iter().filter(|e| e.event == "message").count();
    assert_eq!(messages, posts.len(), "each post stored once");

    // Every member's timeline (replay + live, on its own node) is that
    // history: the same events, in the same order, none twice.
    for (watcher, replayed) in &mut watchers {
        let seen = watcher.timeline_until("t", 0, replayed.clone(), head).await;
        assert_same(&seen, &reference, &format!("{}'s timeline", watcher.who));
    }

    // Read markers and unread counts: a post moves its sender's marker to
    // it, so each member has read up to their last post.
    let last_post = |user: &str| {
        posts
            .iter()
            .filter(|p| p.sender == user)
            .map(|p| p.seq)
            .max()
            .expect("a post")
    };
    let unread_after = |read_seq: u64| {
        reference
            .iter()
            .filter(|e| e.event == "message" && e.seq > read_seq)
            .count() as u64
    };
    let mut expected: HashMap<&str, (u64, u64)> = USERS
        .iter()
        .map(|u| (*u, (last_post(u), unread_after(last_post(u)))))
        .collect();
    assert_ne!(expected["bob"].1, 0, "bob has something to read");
    // Each user's view of the room, through each node.
    let mut listers = Vec::new();
    for node in 0..3 {
        for user in USERS {
            listers.push(cluster.client(node, user).await);
        }
    }
    expect_counts(&mut listers, ROOM, head, &expected).await;
    expect_same_info(&mut listers, ROOM, &epoch, head, &expected).await;

    // Before bob reads: alice watches the room's receipts on node 1, bob's
    // third session (node 3) its inbox.
    let mut ticks = cluster.client(0, "alice").await;
    ticks
        .subscribe("r", &format!("/room/{ROOM}/receipts"), &[])
        .await;
    let snapshot = json(&ticks.timeline_frame("r").await);
    for user in USERS {
        assert_eq!(
            snapshot[user], expected[user].0,
            "node 1's receipts snapshot shows {user}'s marker: {snapshot}"
        );
    }
    let mut bob_inbox = cluster.client(2, "bob").await;
    bob_inbox.subscribe("inbox", "/user/queue/chat", &[]).await;
    let unread = bob_inbox
        .next_where("bob's unread snapshot", |f| {
            f.get("x-event") == Some("unread-snapshot")
        })
        .await;
    assert_eq!(
        unread.get("x-total-unread"),
        Some(expected["bob"].1.to_string().as_str()),
        "node 3's unread snapshot for bob: {unread:?} {}",
        text(&unread)
    );

    // bob reads everything through node 2.
    let head_text = head.to_string();
    let read = members[1]
        .ok(&format!("/room/{ROOM}/read"), &[("x-seq", &head_text)])
        .await;
    assert_eq!(read.get("x-read-seq"), Some(head_text.as_str()), "{read:?}");
    assert_eq!(read.get("x-unread"), Some("0"), "{read:?}");
    // Node 3 tells bob's session there…
    let notice = bob_inbox
        .next_where("bob's read notice on node 3", |f| {
            f.get("x-event") == Some("read") && f.get("x-room") == Some(ROOM)
        })
        .await;
    assert_eq!(
        notice.get("x-read-seq"),
        Some(head_text.as_str()),
        "{notice:?}"
    );
    assert_eq!(notice.get("x-unread"), Some("0"), "{notice:?}");
    assert_eq!(
        notice.get("x-head-seq"),
        Some(head_text.as_str()),
        "{notice:?}"
    );
    // … node 1 shows the new marker to alice…
    ticks
        .next_where("bob's marker in node 1's receipts", |f| {
            f.get("subscription") == Some("r")
                && serde_json::from_slice::<Value>(&f.body).is_ok_and(|v| v["bob"] == head)
        })
        .await;
    // … and every node counts it.
    expected.insert("bob", (head, 0));
    expect_counts(&mut listers, ROOM, head, &expected).await;
    expect_same_info(&mut listers, ROOM, &epoch, head, &expected).await;

    // Unread counts are pushed, coalesced, by every node to its own
    // sessions. Once node 3's count for bob has settled at 0 (one
    // coalescing window after it applied the read), a post by alice on
    // node 1 makes it 1: node 3 pushes that to bob.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = members[0]
        .request(post_frame(ROOM, "after the read", "alice-after"))
        .await;
    let after = receipted_seq(&r, &epoch, &members[0].who);
    assert_eq!(after, head + 1, "{r:?}");
    let pushed = bob_inbox
        .next_where("bob's unread count 1 on node 3", |f| {
            f.get("x-event") == Some("unread")
                && f.get("x-room") == Some(ROOM)
                && f.get("x-head-seq") == Some(after.to_string().as_str())
        })
        .await;
    assert_eq!(pushed.get("x-unread"), Some("1"), "{pushed:?}");
    assert_eq!(
        pushed.get("x-read-seq"),
        Some(head_text.as_str()),
        "{pushed:?}"
    );
    let carol_before = expected["carol"];
    expected.insert("alice", (after, 0));
    expected.insert("bob", (head, 1));
    expected.insert("carol", (carol_before.0, carol_before.1 + 1));
    expect_counts(&mut listers, ROOM, after, &expected).await;
    expect_same_info(&mut listers, ROOM, &epoch, after, &expected).await;

    // Presence and typing (best effort) cross nodes: the three watchers,
    // on three nodes, are present on node 3; alice types on node 1.
    let mut carol = cluster.client(2, "carol").await;
    carol
        .subscribe("p", &format!("/room/{ROOM}/presence"), &[])
        .await;
    let want: Vec<Value> = USERS.iter().map(|u| Value::from(*u)).collect();
    carol
        .next_where("alice, bob and carol present on node 3", |f| {
            f.get("subscription") == Some("p")
                && serde_json::from_slice::<Value>(&f.body).is_ok_and(|v| {
                    let mut online = v["online"].as_array().cloned().unwrap_or_default();
                    online.sort_by_key(|u| u.as_str().unwrap_or_default().to_owned());
                    online == want
                })
        })
        .await;
    carol
        .subscribe("ty", &format!("/room/{ROOM}/typing"), &[])
        .await;
    members[0].ok(&format!("/room/{ROOM}/typing"), &[]).await;
    carol
        .next_where("alice typing, shown on node 3", |f| {
            f.get("subscription") == Some("ty")
                && serde_json::from_slice::<Value>(&f.body)
                    .is_ok_and(|v| v["typing"] == serde_json::json!(["alice"]))
        })
        .await;
}

/// Waits until every lister's node lists `room` for its user with the
/// expected `(read_seq, unread)` and `head`.
async fn expect_counts(
    listers: &mut [Client],
    room: &str,
    head: u64,
    expected: &HashMap<&str, (u64, u64)>,
) {
    for lister in listers {
        let (read_seq, unread) = expected[lister.user.as_str()];
        let deadline = Instant::now() + CLUSTER_WAIT;
        loop {
            let entry = lister.listed(room).await;
            let got = entry.as_ref().map(|e| {
                (
                    e["read_seq"].as_u64(),
                    e["unread"].as_u64(),
                    e["head"].as_u64(),
                )
            });
            if got == Some((Some(read_seq), Some(unread), Some(head))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: /rooms/list shows {entry:?}, expected read_seq {read_seq}, \
                 unread {unread}, head {head}",
                lister.who
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Asserts every node's `info` of `room` is the same and as expected
/// (members, roles, read markers, epoch, head).
async fn expect_same_info(
    listers: &mut [Client],
    room: &str,
    epoch: &str,
    head: u64,
    expected: &HashMap<&str, (u64, u64)>,
) {
    let mut infos = Vec::new();
    // The listers are (node, user) pairs, node by node: alice's on each
    // node is enough.
    for lister in listers.iter_mut().filter(|l| l.user == "alice") {
        let mut info = lister.info(room).await;
        if let Some(members) = info["members"].as_array_mut() {
            members.sort_by_key(|m| m["user"].as_str().unwrap_or_default().to_owned());
        }
        infos.push((lister.who.clone(), info));
    }
    let (first_who, first) = &infos[0];
    assert_eq!(first["epoch"], epoch, "{first_who}: {first}");
    assert_eq!(first["head"], head, "{first_who}: {first}");
    let members: Vec<(String, String, u64)> = first["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["user"].as_str().unwrap_or_default().to_owned(),
                m["role"].as_str().unwrap_or_default().to_owned(),
                m["read_seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(String, String, u64)> =
        [("alice", "owner"), ("bob", "member"), ("carol", "member")]
            .iter()
            .map(|(u, role)| (u.to_string(), role.to_string(), expected[u].0))
            .collect();
    assert_eq!(members, want, "{first_who}: membership and read markers");
    for (who, info) in &infos[1..] {
        assert_eq!(info, first, "{who} and {first_who} disagree on the room");
    }
}

// ---------------------------------------------------------------------------
// A node killed while its client posts

/// What the client of the node that is killed did and saw.
#[derive(Debug, Default)]
struct WriterLog {
    /// Client message ids, in the order sent.
    sent: Vec<String>,
    /// (id, x-seq) of each post receipted, in the order receipted.
    receipted: Vec<(String, u64)>,
    /// RECEIPTs with an error (must not happen).
    refused: Vec<Frame>,
    /// The timeline as the session saw it live.
    seen: Vec<Event>,
    /// Why it stopped.
    end: String,
}

/// The body of writer post `id` (`w-{i}`).
fn writer_body(id: &str) -> String {
    format!("post {id}")
}

/// Posts to `room` with receipts, a few at a time, and reads its timeline
/// subscription `t`, until the connection ends; `progress` counts the
/// RECEIPTs.
async fn write_until_cut(mut c: Client, room: String, progress: Arc<AtomicUsize>) -> WriterLog {
    const WINDOW: usize = 4;
    const MAX_POSTS: usize = 3000;
    let mut log = WriterLog::default();
    let mut outstanding = 0;
    loop {
        while outstanding < WINDOW && log.sent.len() < MAX_POSTS {
            let id = format!("w-{}", log.sent.len());
            let f = post_frame(&room, &writer_body(&id), &id).header("receipt", id.clone());
            if let Err(e) = c.peer.framed.send(f).await {
                log.end = format!("write failed: {e}");
                return log;
            }
            log.sent.push(id);
            outstanding += 1;
        }
        match c.peer.try_frame(CLUSTER_WAIT).await {
            Some(Some(f)) if f.command == Command::Receipt => {
                outstanding -= 1;
                if f.get("x-error").is_some() {
                    log.refused.push(f);
                    continue;
                }
                let id = f.get("receipt-id").unwrap_or_default().to_owned();
                log.receipted.push((id, seq_of(&f)));
                progress.store(log.receipted.len(), Ordering::SeqCst);
            }
            Some(Some(f))
                if f.command == Command::Message && f.get("subscription") == Some("t") =>
            {
                log.seen.push(event(&f));
            }
            Some(Some(f)) => {
                log.end = format!("unexpected frame: {f:?}");
                return log;
            }
            Some(None) => {
                log.end = "connection closed".into();
                return log;
            }
            None => {
                log.end = format!("nothing for {CLUSTER_WAIT:?}");
                return log;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_a_killed_node_resumes_on_another_with_every_receipted_post() {
    let (_serial, mut cluster) = serial_cluster().await;
    bounded("SIGKILL mid-stream", killed_node_mid_stream(&mut cluster)).await;
}

async fn killed_node_mid_stream(cluster: &mut Cluster) {
    const ROOM: &str = "live";
    /// RECEIPTs the writer gets before its node is killed.
    const KILL_AFTER: usize = 40;
    let mut owner = cluster.client(0, "olga").await;
    let created = owner
        .ok(
            "/rooms/create",
            &[("x-room-id", ROOM), ("x-invite", "walt,wendy")],
        )
        .await;
    let epoch = created.get("x-epoch").expect("x-epoch").to_owned();
    // walt watches through node 2 from the room's first event.
    let mut walt = cluster.client(1, "walt").await;
    walt.ok(&format!("/room/{ROOM}/join"), &[]).await;
    let (walt_replay, _) = walt.timeline("t", ROOM, &[("x-history", "500")]).await;
    // wendy posts through node 3 and watches the timeline there too.
    let mut wendy = cluster.client(2, "wendy").await;
    wendy.ok(&format!("/room/{ROOM}/join"), &[]).await;
    let (wendy_replay, marker) = wendy.timeline("t", ROOM, &[("x-history", "500")]).await;
    assert_eq!(marker.get("x-epoch"), Some(epoch.as_str()), "{marker:?}");
    assert!(wendy.kept.is_empty(), "{:?}", wendy.kept);

    let progress = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_until_cut(
        wendy,
        ROOM.to_owned(),
        Arc::clone(&progress),
    ));
    let deadline = Instant::now() + CLUSTER_WAIT;
    while progress.load(Ordering::SeqCst) < KILL_AFTER {
        if writer.is_finished() {
            let log = writer.await.expect("the writer task");
            panic!("the writer stopped before the kill: {log:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the writer got only {} RECEIPTs in {CLUSTER_WAIT:?}",
            progress.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.nodes[2].kill();
    let log = tokio::time::timeout(CLUSTER_WAIT, writer)
        .await
        .expect("the writer notices its node died")
        .expect("the writer task");
    let in_flight: Vec<String> = {
        let done: HashSet<&String> = log.receipted.iter().map(|(id, _)| id).collect();
        log.sent
            .iter()
            .filter(|id| !done.contains(id))
            .cloned()
            .collect()
    };
    eprintln!(
        "writer: {} posts sent, {} receipted, {} in flight at the kill, {} seen live; {}",
        log.sent.len(),
        log.receipted.len(),
        in_flight.len(),
        log.seen.len(),
        log.end
    );
    assert!(log.refused.is_empty(), "refused posts: {:?}", log.refused);
    assert_eq!(log.end, "connection closed", "{log:?}");
    assert!(log.receipted.len() >= KILL_AFTER);
    let order: Vec<u64> = log.receipted.iter().map(|(_, s)| *s).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "receipted in send order with growing x-seq: {:?}",
        log.receipted
    );
    let max_receipted = *order.last().expect("receipted");

    // What wendy's client knows: the timeline it saw (replay, then live)
    // and its cursor.
    let mut before = wendy_replay.clone();
    before.extend(log.seen.iter().cloned());
    assert_gapless(&before, 1, "wendy's timeline on node 3 before the kill");
    let cursor = before.last().map_or(0, |e| e.seq);

    // wendy reconnects to node 1 and resumes from her cursor, at once: node
    // 1 may not have applied every record node 3 applied before it died
    // (its head behind her cursor); the replay then waits until it has.
    let mut wendy = cluster.client(0, "wendy").await;
    let since = cursor.to_string();
    let sub = "t";
    let asked = Instant::now();
    let (replayed, marker) = wendy
        .timeline(sub, ROOM, &[("x-since-seq", &since), ("x-epoch", &epoch)])
        .await;
    eprintln!(
        "resumed from seq {cursor} on node 1 in {:?}: {marker:?}",
        asked.elapsed()
    );
    assert_eq!(
        marker.get("x-recovered"),
        Some("true"),
        "node 1 resumes wendy from seq {cursor} in one SUBSCRIBE: {marker:?}"
    );
    let head = marker
        .get("x-head-seq")
        .and_then(|h| h.parse::<u64>().ok())
        .expect("x-head-seq");
    assert!(head >= cursor, "{marker:?}");
    assert_gapless(&replayed, cursor + 1, "the replay on node 1");
    assert_eq!(
        replayed.last().map_or(cursor, |e| e.seq),
        head,
        "the replay reaches the head it reports: {marker:?}"
    );
    // Records node 3 appended just before it died may reach node 1 after
    // the replay: they follow live.
    let after = wendy
        .timeline_until(sub, cursor, replayed, max_receipted)
        .await;
    let mut resumed = before.clone();
    resumed.extend(after.iter().cloned());
    assert_gapless(&resumed, 1, "wendy's timeline, before and after resuming");
    let by_id: HashMap<&str, Vec<u64>> = resumed.iter().fold(HashMap::new(), |mut m, e| {
        if let Some(id) = &e.client_msg_id {
            m.entry(id.as_str()).or_default().push(e.seq);
        }
        m
    });
    for (id, seq) in &log.receipted {
        assert_eq!(
            by_id.get(id.as_str()),
            Some(&vec![*seq]),
            "receipted post {id} (x-seq {seq}) is in wendy's timeline exactly once"
        );
        let e = &resumed[*seq as usize - 1];
        assert_eq!(
            (e.sender.as_str(), e.body.as_str()),
            ("wendy", writer_body(id).as_str()),
            "{e:?}"
        );
    }
    assert!(
        by_id.values().all(|seqs| seqs.len() == 1),
        "no post twice: {by_id:?}"
    );

    // The posts in flight at the kill are re-sent through node 1 with the
    // same ids: those node 3 stored are not stored again.
    let mut resent = HashMap::new();
    let mut stored_before = 0;
    for id in &in_flight {
        let r = wendy.request(post_frame(ROOM, &writer_body(id), id)).await;
        assert_eq!(r.get("x-error"), None, "re-sent {id}: {r:?}");
        let seq = seq_of(&r);
        // (A post stored after the last receipted one is beyond what wendy
        // read so far: the final history below checks it.)
        match (r.get("x-duplicate"), by_id.get(id.as_str())) {
            (Some("true"), Some(seqs)) => {
                assert_eq!(
                    seqs,
                    &vec![seq],
                    "a duplicate's x-seq is where the post is: {r:?}"
                )
            }
            (Some("true"), None) => assert!(seq > max_receipted, "{r:?}"),
            (_, seen) => assert_eq!(seen, None, "{id} stored again: {r:?}"),
        }
        if r.get("x-duplicate") == Some("true") {
            stored_before += 1;
        }
        resent.insert(id.clone(), seq);
    }
    eprintln!(
        "re-sent {} posts: {stored_before} had been stored before the kill",
        in_flight.len()
    );
    let head = resent
        .values()
        .copied()
        .max()
        .unwrap_or(0)
        .max(max_receipted);

    // Nodes 1 and 2 serve one history with every post once; walt (node 2)
    // saw it all live.
    let on_1 = wendy.history_until(ROOM, head).await;
    let on_2 = walt.history_until(ROOM, head).await;
    assert_same(&on_2, &on_1, "node 2's history against node 1's");
    assert_gapless(&on_1, 1, "node 1's history");
    assert_same(
        &on_1[..cursor as usize],
        &before,
        "node 1's history against what node 3 showed before it died",
    );
    let stored: Vec<&str> = on_1
        .iter()
        .filter(|e| e.event == "message")
        .filter_map(|e| e.client_msg_id.as_deref())
        .collect();
    let mut sent: Vec<&str> = log.sent.iter().map(String::as_str).collect();
    let mut stored_sorted = stored.clone();
    stored_sorted.sort_unstable();
    sent.sort_unstable();
    assert_eq!(stored_sorted, sent, "every post stored, exactly once");
    let answered = log.receipted.iter().cloned().chain(resent);
    for (id, seq) in answered {
        assert_eq!(
            on_1[seq as usize - 1].client_msg_id.as_deref(),
            Some(id.as_str()),
            "x-seq {seq} of {id}"
        );
    }
    let walt_saw = walt.timeline_until("t", 0, walt_replay, head).await;
    assert_same(&walt_saw, &on_1, "walt's timeline on node 2");
}

// ---------------------------------------------------------------------------
// A node started again under its id

/// A node that died and starts again with the same node id and an empty
/// store reads the chat log from its beginning, records its first life
/// appended included. Its new clients' commands must be answered by their
/// own records: a post's RECEIPT comes once that post is stored and names
/// it by its `x-seq`. (Request ids restart at 1 with every start; a record
/// answers a waiting command only if this start appended it: node id and
/// incarnation, `chat-plugin/src/cluster/apply.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_answers_new_commands_with_their_own_records() {
    let (_serial, mut cluster) = serial_cluster().await;
    bounded("node started again", restarted_node(&mut cluster)).await;
}

async fn restarted_node(cluster: &mut Cluster) {
    const ROOM: &str = "again";
    const FIRST_LIFE: usize = 30;
    const SECOND_LIFE: usize = 10;
    let mut owner = cluster.client(0, "olga").await;
    let created = owner
        .ok(
            "/rooms/create",
            &[("x-room-id", ROOM), ("x-invite", "wendy")],
        )
        .await;
    let epoch = created.get("x-epoch").expect("x-epoch").to_owned();
    let mut wendy = cluster.client(2, "wendy").await;
    wendy.ok(&format!("/room/{ROOM}/join"), &[]).await;
    let mut last = 0;
    for i in 0..FIRST_LIFE {
        let r = wendy
            .request(post_frame(
                ROOM,
                &format!("first life {i}"),
                &format!("a-{i}"),
            ))
            .await;
        last = receipted_seq(&r, &epoch, &wendy.who);
    }
    drop(wendy);
    cluster.nodes[2].kill();
    cluster.nodes[2] = BrokerProcess::spawn_with_admin(&cluster.configs[2]).await;
    // At once, while node 3 reads the log again.
    let mut wendy = cluster.client(2, "wendy").await;
    let ids: Vec<String> = (0..SECOND_LIFE).map(|i| format!("b-{i}")).collect();
    for id in &ids {
        wendy
            .send(post_frame(ROOM, &format!("second life {id}"), id).header("receipt", id.clone()))
            .await;
    }
    let mut answers = Vec::new();
    for id in &ids {
        let r = wendy
            .next_where(&format!("RECEIPT {id}"), |f| {
                f.command == Command::Receipt && f.get("receipt-id") == Some(id.as_str())
            })
            .await;
        answers.push((id.clone(), r));
    }
    let head = last + SECOND_LIFE as u64;
    let on_1 = owner.history_until(ROOM, head).await;
    assert_gapless(&on_1, 1, "node 1's history");
    let mut seqs = Vec::new();
    for (id, r) in &answers {
        assert_eq!(r.get("x-error"), None, "{id}: {r:?}");
        assert_eq!(r.get("x-duplicate"), None, "{id} is a new post: {r:?}");
        assert_eq!(r.get("x-epoch"), Some(epoch.as_str()), "{id}: {r:?}");
        let seq = seq_of(r);
        assert!(
            seq > last,
            "{id} is stored after the first life's posts: {r:?}"
        );
        let e = on_1.get(seq as usize - 1);
        assert_eq!(
            e.and_then(|e| e.client_msg_id.as_deref()),
            Some(id.as_str()),
            "the RECEIPT of {id} names event {e:?}: {r:?}"
        );
        assert_eq!(
            e.map(|e| (e.sender.as_str(), e.body.as_str())),
            Some(("wendy", format!("second life {id}").as_str())),
            "{e:?}"
        );
        seqs.push(seq);
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (last + 1..=head).collect::<Vec<_>>(),
        "every second-life post stored once"
    );
    // The restarted node rebuilt the same room, nothing applied twice.
    let on_3 = wendy.history_until(ROOM, head).await;
    assert_same(&on_3, &on_1, "node 3's history after its restart");
}
