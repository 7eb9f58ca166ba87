//! Clustering through Kafka, end to end: a real Kafka-protocol server
//! (Tansu, see `common/tansu.rs`) and real `stompede` processes on loopback.
//! Cross-node pub/sub with order checks, queues shared by consumers on every
//! node, `/user/` destinations across nodes, a node killed with SIGKILL
//! mid-stream, Kafka stopped and restarted mid-stream, and the start-up
//! rules when Kafka cannot be reached.

#![cfg(feature = "kafka")]

mod common;

use common::tansu::Tansu;
use common::{frame, BrokerProcess, Peer};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use stompede::codec::{Command, Frame};
use tokio::net::TcpStream;

/// Partitions of the test clusters' Kafka topics.
const PARTITIONS: u32 = 6;
/// How long a cross-node message may take before a test gives up.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

fn node_config(kafka: &str, node: &str, extra: &str) -> String {
    format!(
        "[cluster]\nenabled = true\nnode_id = \"{node}\"\nbootstrap_servers = \"{kafka}\"\n\
         partitions = {PARTITIONS}\n{extra}\n"
    )
}

async fn start_nodes(kafka: &Tansu, n: usize) -> Vec<BrokerProcess> {
    let mut nodes = Vec::new();
    for i in 1..=n {
        let config = node_config(&kafka.bootstrap(), &format!("node-{i}"), "");
        nodes.push(BrokerProcess::spawn_with_admin(&config).await);
    }
    nodes
}

async fn client(node: &BrokerProcess, login: &str) -> Peer<TcpStream> {
    let stream = TcpStream::connect(node.tcp).await.expect("connect");
    let mut peer = Peer::new(stream);
    peer.connect("1.2", Some(login)).await;
    peer
}

/// The next MESSAGE within [`CLUSTER_WAIT`].
async fn message(peer: &mut Peer<TcpStream>) -> Frame {
    loop {
        match peer.try_frame(CLUSTER_WAIT).await {
            Some(Some(f)) if f.command == Command::Message => return f,
            Some(Some(f)) if f.command == Command::Receipt => continue,
            other => panic!("expected a MESSAGE, got {other:?}"),
        }
    }
}

fn body(f: &Frame) -> String {
    String::from_utf8_lossy(&f.body).into_owned()
}

/// Sends with a receipt and waits for it (Kafka acknowledged the record).
async fn send_receipted(peer: &mut Peer<TcpStream>, destination: &str, body: &str) {
    let receipt = format!("r-{body}");
    peer.send(
        frame(
            Command::Send,
            &[("destination", destination), ("receipt", &receipt)],
        )
        .body(body.to_owned()),
    )
    .await;
    loop {
        let f = peer
            .try_frame(CLUSTER_WAIT)
            .await
            .expect("a RECEIPT in time")
            .expect("open");
        if f.command == Command::Receipt {
            assert_eq!(f.get("receipt-id"), Some(receipt.as_str()));
            return;
        }
        assert_ne!(f.command, Command::Error, "{f:?}");
    }
}

/// One line of the node's Prometheus text, as a number.
async fn metric(node: &BrokerProcess, name: &str) -> Option<u64> {
    let text = http_get(node, "/metrics").await.1;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("stompede_{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

/// A GET on the node's admin listener: status and body.
async fn http_get(node: &BrokerProcess, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(node.admin.expect("admin listener"))
        .await
        .expect("admin connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// Waits until the queue group has shared the partitions among all the
/// nodes (no rebalance is pending).
async fn wait_for_queue_group(nodes: &[&BrokerProcess]) {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let mut owned = Vec::new();
        for node in nodes {
            owned.push(metric(node, "cluster_queue_partitions").await.unwrap_or(0));
        }
        if owned.iter().sum::<u64>() == u64::from(PARTITIONS) && owned.iter().all(|n| *n > 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "queue partitions owned: {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn subscribe(peer: &mut Peer<TcpStream>, id: &str, destination: &str, ack: &str) {
    peer.request(frame(
        Command::Subscribe,
        &[("id", id), ("destination", destination), ("ack", ack)],
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_messages_reach_every_node_in_one_order() {
    let kafka = Tansu::start().await;
    let nodes = start_nodes(&kafka, 3).await;
    let mut subscribers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut peer = client(node, &format!("sub{i}")).await;
        subscribe(&mut peer, "s", "/topic/orders", "auto").await;
        subscribers.push(peer);
    }
    // Two publishers on different nodes, interleaved.
    let mut a = client(&nodes[0], "a").await;
    let mut b = client(&nodes[1], "b").await;
    const EACH: usize = 150;
    for i in 0..EACH {
        a.publish("/topic/orders", &format!("a-{i}")).await;
        b.publish("/topic/orders", &format!("b-{i}")).await;
    }
    send_receipted(&mut a, "/topic/orders", "a-end").await;
    send_receipted(&mut b, "/topic/orders", "b-end").await;
    let mut orders = Vec::new();
    for peer in &mut subscribers {
        let mut got = Vec::new();
        while got.len() < 2 * EACH + 2 {
            got.push(body(&message(peer).await));
        }
        orders.push(got);
    }
    for order in &orders[1..] {
        assert_eq!(order, &orders[0], "every node delivers in the same order");
    }
    for publisher in ["a", "b"] {
        let mine: Vec<&String> = orders[0]
            .iter()
            .filter(|m| m.starts_with(&format!("{publisher}-")))
            .collect();
        let mut expected: Vec<String> = (0..EACH).map(|i| format!("{publisher}-{i}")).collect();
        expected.push(format!("{publisher}-end"));
        assert_eq!(
            mine,
            expected.iter().collect::<Vec<_>>(),
            "a publisher's order is kept"
        );
    }
    // Nothing more: each message once.
    for peer in &mut subscribers {
        peer.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_consumers_on_every_node_get_each_message_once() {
    let kafka = Tansu::start().await;
    let nodes = start_nodes(&kafka, 3).await;
    let mut consumers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let mut peer = client(node, &format!("worker{i}")).await;
        subscribe(&mut peer, "w", "/queue/jobs", "client-individual").await;
        consumers.push(peer);
    }
    wait_for_queue_group(&nodes.iter().collect::<Vec<_>>()).await;
    let mut producer = client(&nodes[0], "producer").await;
    const JOBS: usize = 240;
    for i in 0..JOBS {
        send_receipted(&mut producer, "/queue/jobs", &format!("job-{i}")).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut per_node = [0usize; 3];
    let deadline = Instant::now() + CLUSTER_WAIT;
    while seen.len() < JOBS && Instant::now() < deadline {
        for (i, peer) in consumers.iter_mut().enumerate() {
            while let Some(Some(f)) = peer.try_frame(Duration::from_millis(50)).await {
                if f.command != Command::Message {
                    continue;
                }
                *seen.entry(body(&f)).or_default() += 1;
                per_node[i] += 1;
                let ack = f.get("ack").expect("ack header").to_owned();
                peer.send(frame(Command::Ack, &[("id", &ack)])).await;
            }
        }
    }
    assert_eq!(seen.len(), JOBS, "every job delivered");
    assert!(
        seen.values().all(|n| *n == 1),
        "no job delivered twice: {seen:?}"
    );
    assert!(
        per_node.iter().all(|n| *n > 0),
        "consumers on every node got work: {per_node:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_destinations_reach_sessions_on_every_node() {
    let kafka = Tansu::start().await;
    let nodes = start_nodes(&kafka, 3).await;
    let mut phone = client(&nodes[1], "alice").await;
    let mut laptop = client(&nodes[2], "alice").await;
    // A node reads only the partitions its subscribers need.
    assert_eq!(metric(&nodes[1], "cluster_topic_partitions").await, Some(0));
    subscribe(&mut phone, "i", "/user/queue/inbox", "auto").await;
    subscribe(&mut laptop, "i", "/user/queue/inbox", "auto").await;
    assert_eq!(metric(&nodes[1], "cluster_topic_partitions").await, Some(1));
    assert_eq!(metric(&nodes[0], "cluster_topic_partitions").await, Some(0));
    let mut bob = client(&nodes[0], "bob").await;
    send_receipted(&mut bob, "/user/alice/queue/inbox", "hello alice").await;
    for peer in [&mut phone, &mut laptop] {
        let f = message(peer).await;
        assert_eq!(body(&f), "hello alice");
        assert_eq!(f.get("destination"), Some("/user/queue/inbox"));
    }
    phone
        .request(frame(Command::Unsubscribe, &[("id", "i")]))
        .await;
    assert_eq!(metric(&nodes[1], "cluster_topic_partitions").await, Some(0));
    // Subscribed again: read from now on, and nothing from while paused.
    send_receipted(&mut bob, "/user/alice/queue/inbox", "while away").await;
    subscribe(&mut phone, "i2", "/user/queue/inbox", "auto").await;
    send_receipted(&mut bob, "/user/alice/queue/inbox", "welcome back").await;
    assert_eq!(body(&message(&mut phone).await), "welcome back");
    assert_eq!(body(&message(&mut laptop).await), "while away");
    assert_eq!(body(&message(&mut laptop).await), "welcome back");
}

async fn subscribe_durable(peer: &mut Peer<TcpStream>) {
    peer.request(frame(
        Command::Subscribe,
        &[
            ("id", "feed"),
            ("destination", "/topic/feed"),
            ("durable", "true"),
            ("ack", "client-individual"),
        ],
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_subscription_resumes_on_another_node() {
    let kafka = Tansu::start().await;
    let nodes = start_nodes(&kafka, 3).await;
    let mut reader = client(&nodes[0], "reader").await;
    subscribe_durable(&mut reader).await;
    // Everything after the SUBSCRIBE's RECEIPT is kept, even before the
    // subscription's group has its partitions.
    let mut publisher = client(&nodes[1], "publisher").await;
    for i in 0..5 {
        send_receipted(&mut publisher, "/topic/feed", &format!("m-{i}")).await;
    }
    for i in 0..5 {
        let f = message(&mut reader).await;
        assert_eq!(body(&f), format!("m-{i}"));
        let ack = f.get("ack").expect("ack").to_owned();
        reader.send(frame(Command::Ack, &[("id", &ack)])).await;
    }
    reader.request(frame(Command::Disconnect, &[])).await;
    // Published while the subscriber is away: kept in Kafka for it.
    for i in 5..10 {
        send_receipted(&mut publisher, "/topic/feed", &format!("m-{i}")).await;
    }
    // Back, on another node: the rest, and nothing acknowledged before.
    let mut reader = client(&nodes[2], "reader").await;
    subscribe_durable(&mut reader).await;
    for i in 5..10 {
        let f = message(&mut reader).await;
        assert_eq!(body(&f), format!("m-{i}"));
        let ack = f.get("ack").expect("ack").to_owned();
        reader.send(frame(Command::Ack, &[("id", &ack)])).await;
    }
    reader.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_loses_nothing_receipted() {
    let kafka = Tansu::start().await;
    let mut nodes = start_nodes(&kafka, 3).await;
    // A consumer on node 1 takes jobs and never acknowledges them.
    let mut doomed = client(&nodes[0], "doomed").await;
    subscribe(&mut doomed, "w", "/queue/work", "client-individual").await;
    let mut survivor = client(&nodes[1], "survivor").await;
    subscribe(&mut survivor, "w", "/queue/work", "client-individual").await;
    // Node 3 has no consumer of the queue: it takes none of its partitions.
    wait_for_queue_group(&[&nodes[0], &nodes[1]]).await;
    let mut watcher = client(&nodes[2], "watcher").await;
    subscribe(&mut watcher, "t", "/topic/stream", "auto").await;
    // A publisher on node 1 streams topic messages; everything receipted
    // before the kill must reach the watcher on node 3.
    let mut publisher = client(&nodes[0], "publisher").await;
    let mut receipted = Vec::new();
    for i in 0..50 {
        send_receipted(&mut publisher, "/topic/stream", &format!("t-{i}")).await;
        receipted.push(format!("t-{i}"));
    }
    const JOBS: usize = 60;
    let mut producer = client(&nodes[2], "producer").await;
    for i in 0..JOBS {
        send_receipted(&mut producer, "/queue/work", &format!("job-{i}")).await;
    }
    // Let node 1's consumer take some work, unacknowledged.
    let mut held = 0;
    while let Some(Some(f)) = doomed.try_frame(Duration::from_secs(2)).await {
        if f.command == Command::Message {
            held += 1;
        }
    }
    assert!(held > 0, "node 1 delivered some of the jobs");
    // Node 1 joined the queue group first: it leads the group.
    nodes[0].kill();
    drop(doomed);
    drop(publisher);

    let mut got: Vec<String> = Vec::new();
    while got.len() < receipted.len() {
        got.push(body(&message(&mut watcher).await));
    }
    assert_eq!(
        got, receipted,
        "the watcher got every receipted message in order"
    );

    // The survivor gets every job, node 1's unacknowledged ones flagged.
    let mut seen = HashSet::new();
    let mut redelivered = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    while seen.len() < JOBS && Instant::now() < deadline {
        let Some(Some(f)) = survivor.try_frame(Duration::from_millis(500)).await else {
            continue;
        };
        if f.command != Command::Message {
            continue;
        }
        if f.get("redelivered") == Some("true") {
            redelivered += 1;
        }
        seen.insert(body(&f));
        let ack = f.get("ack").expect("ack").to_owned();
        survivor.send(frame(Command::Ack, &[("id", &ack)])).await;
    }
    assert_eq!(seen.len(), JOBS, "every receipted job reached the survivor");
    assert!(
        redelivered >= 1,
        "the dead node's jobs come flagged redelivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_recovers_when_kafka_restarts() {
    let mut kafka = Tansu::start().await;
    let nodes = start_nodes(&kafka, 2).await;
    let mut local = client(&nodes[0], "local").await;
    subscribe(&mut local, "t", "/topic/news", "auto").await;
    let mut remote = client(&nodes[1], "remote").await;
    subscribe(&mut remote, "t", "/topic/news", "auto").await;
    let mut publisher = client(&nodes[0], "publisher").await;
    send_receipted(&mut publisher, "/topic/news", "before").await;
    assert_eq!(body(&message(&mut local).await), "before");
    assert_eq!(body(&message(&mut remote).await), "before");
    assert_eq!(http_get(&nodes[0], "/readyz").await.0, 200);

    kafka.stop();
    let deadline = Instant::now() + CLUSTER_WAIT;
    while http_get(&nodes[0], "/readyz").await.0 != 503 {
        assert!(Instant::now() < deadline, "readiness reports Kafka down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Local traffic keeps flowing; the RECEIPTs wait for Kafka.
    for i in 0..5 {
        publisher
            .send(
                frame(
                    Command::Send,
                    &[
                        ("destination", "/topic/news"),
                        ("receipt", &format!("d-{i}")),
                    ],
                )
                .body(format!("during-{i}")),
            )
            .await;
    }
    for i in 0..5 {
        assert_eq!(body(&message(&mut local).await), format!("during-{i}"));
    }
    kafka.restart().await;
    let mut receipts = HashSet::new();
    while receipts.len() < 5 {
        let f = publisher
            .try_frame(CLUSTER_WAIT)
            .await
            .expect("receipts after Kafka returns")
            .expect("open");
        assert_eq!(f.command, Command::Receipt, "{f:?}");
        receipts.insert(f.get("receipt-id").unwrap_or_default().to_owned());
    }
    for i in 0..5 {
        assert_eq!(body(&message(&mut remote).await), format!("during-{i}"));
    }
    // Delivered locally once, not again when the records come back.
    local.expect_silence(Duration::from_millis(500)).await;
    let deadline = Instant::now() + CLUSTER_WAIT;
    while http_get(&nodes[0], "/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send_receipted(&mut publisher, "/topic/news", "after").await;
    assert_eq!(body(&message(&mut local).await), "after");
    assert_eq!(body(&message(&mut remote).await), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_kafka_stops_the_start_unless_degraded_is_allowed() {
    // A port bound but not listening: connections to it are refused, and
    // no other test's server can take it while this socket holds it.
    let closed = tokio::net::TcpSocket::new_v4().expect("socket");
    closed
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = closed.local_addr().expect("addr").port();
    let kafka = format!("127.0.0.1:{port}");
    let config = std::env::temp_dir().join(format!("stompede-cluster-{port}.toml"));
    std::fs::write(&config, node_config(&kafka, "lonely", "")).expect("config");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_stompede"))
        .arg("--config")
        .arg(&config)
        .args([
            "--tcp-listen=127.0.0.1:0",
            "--ws-listen=",
            "--admin-listen=",
            "--memory-store",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run stompede");
    let output = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("stompede gives up on an unreachable Kafka within 40 s")
        .expect("stompede output");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot join the cluster through Kafka"),
        "clear message: {stderr}"
    );
    let _ = std::fs::remove_file(&config);

    let degraded = node_config(&kafka, "lonely", "start_degraded = true");
    let node = BrokerProcess::spawn_with_admin(&degraded).await;
    let (status, text) = http_get(&node, "/readyz").await;
    assert_eq!((status, text.trim()), (503, "kafka unreachable"));
    // Its own clients are served meanwhile.
    let mut peer = client(&node, "solo").await;
    subscribe(&mut peer, "t", "/topic/local", "auto").await;
    // (No receipt: that waits for Kafka.)
    peer.send(frame(Command::Send, &[("destination", "/topic/local")]).body("still here"))
        .await;
    assert_eq!(body(&message(&mut peer).await), "still here");
}
