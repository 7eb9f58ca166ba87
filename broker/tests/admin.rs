//! The admin HTTP listener: health, readiness, Prometheus metrics that
//! move as frames flow, and the JSON API.
//!
//! Tests whose name ends in `_once_the_session_counts` need the session to
//! call the frame, delivery and latency counters (`Stats::frame_in`,
//! `Stats::frame_out`, `Stats::delivered`, `Stats::observe_delivery_latency`,
//! `Connection::frame_in`/`frame_out`).

mod common;

use common::Peer;
use stompede::config::Config;
use stompede::{Broker, BrokerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> BrokerHandle {
    let mut config = Config::default();
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = "127.0.0.1:0".into();
    common::launch(config).await
}

/// A plain HTTP/1.1 GET; returns (status, body).
async fn get(broker: &BrokerHandle, path: &str) -> (u16, String) {
    http(broker, "GET", path).await
}

/// A plain HTTP/1.1 POST without a body.
async fn post(broker: &BrokerHandle, path: &str) -> (u16, String) {
    http(broker, "POST", path).await
}

async fn http(broker: &BrokerHandle, method: &str, path: &str) -> (u16, String) {
    http_with(broker, method, path, "").await
}

/// An HTTP/1.1 request with `extra` header lines (each ending in CRLF).
async fn http_with(broker: &BrokerHandle, method: &str, path: &str, extra: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(broker.admin_addr().expect("admin listener"))
        .await
        .expect("connect");
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut response = String::new();
    tokio::time::timeout(common::WAIT, s.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A plain HTTP/1.1 DELETE without a body.
async fn delete(broker: &BrokerHandle, path: &str) -> (u16, String) {
    http(broker, "DELETE", path).await
}

/// The value of metric `name` (with its labels, as written) in a
/// Prometheus text body.
fn metric(body: &str, name: &str) -> u64 {
    try_metric(body, name).unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
}

fn try_metric(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// Scrapes `/metrics` until `ready` holds (queue gauges are published by
/// the queue actors after each turn, a moment after their RECEIPTs);
/// returns the last scrape.
async fn scrape_until(broker: &BrokerHandle, ready: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let (status, body) = get(broker, "/metrics").await;
        assert_eq!(status, 200);
        if ready(&body) || tokio::time::Instant::now() >= deadline {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn health_and_readiness() {
    let broker = start().await;
    assert_eq!(get(&broker, "/healthz").await.0, 200);
    assert_eq!(get(&broker, "/readyz").await.0, 200);
    assert_eq!(get(&broker, "/nope").await.0, 404);
    let (status, page) = get(&broker, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Stompede status</title>") && page.contains("/api/destinations"));
}

#[tokio::test]
async fn metrics_move_as_frames_flow() {
    let broker = start().await;
    let (status, before) = get(&broker, "/metrics").await;
    assert_eq!(status, 200);
    assert!(before.contains("# TYPE stompede_messages_published_total counter"));
    const TOPIC_PUBLISHED: &str = "stompede_messages_published_total{kind=\"topic\"}";
    const QUEUE_PUBLISHED: &str = "stompede_messages_published_total{kind=\"queue\"}";
    const DELIVERED: &str = "stompede_messages_delivered_total{kind=\"topic\"}";
    let (topic, queue) = (
        metric(&before, TOPIC_PUBLISHED),
        metric(&before, QUEUE_PUBLISHED),
    );
    let delivered = metric(&before, DELIVERED);

    let mut sub = Peer::connected(&broker).await;
    sub.subscribe("s", "/topic/metrics", "auto").await;
    let mut p = Peer::connected(&broker).await;
    for _ in 0..3 {
        p.publish("/topic/metrics", "x").await;
    }
    for _ in 0..3 {
        sub.expect_message("x").await;
    }
    p.publish("/queue/metrics", "queued").await;
    p.raw(b"BOGUS\n\n\0").await;
    p.expect_error_and_close().await;

    let (_, after) = get(&broker, "/metrics").await;
    assert_eq!(metric(&after, TOPIC_PUBLISHED), topic + 3);
    assert_eq!(metric(&after, QUEUE_PUBLISHED), queue + 1);
    assert_eq!(metric(&after, DELIVERED), delivered + 3);
    assert_eq!(metric(&after, "stompede_errors_sent_total"), 1);
    assert!(
        metric(
            &after,
            "stompede_connections_accepted_total{transport=\"tcp\"}"
        ) >= 2
    );
    assert_eq!(
        metric(
            &after,
            "stompede_connections_accepted_total{transport=\"wss\"}"
        ),
        0
    );
    assert_eq!(metric(&after, "stompede_queues"), 1);
    assert_eq!(metric(&after, "stompede_store_size_bytes"), 0);
    for family in [
        "connections_open gauge",
        "frames_received_total counter",
        "frames_sent_total counter",
        "bytes_received_total counter",
        "bytes_sent_total counter",
        "messages_acked_total counter",
        "messages_nacked_total counter",
        "messages_redelivered_total counter",
        "messages_dead_lettered_total counter",
        "messages_expired_total counter",
        "messages_dropped_total counter",
        "slow_consumer_drops_total counter",
        "slow_consumer_disconnects_total counter",
        "queue_depth gauge",
        "queue_unacked gauge",
        "queues_depth gauge",
        "queues_unacked gauge",
        "store_fsync_seconds histogram",
        "delivery_latency_seconds histogram",
    ] {
        assert!(
            after.contains(&format!("# TYPE stompede_{family}\n")),
            "no {family} in:\n{after}"
        );
    }
}

#[tokio::test]
async fn metrics_count_queue_messages_by_kind_and_store_syncs() {
    let broker = start().await;
    let (_, before) = get(&broker, "/metrics").await;
    let fsyncs = metric(&before, "stompede_store_fsync_seconds_count");

    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/kinds", "client-individual").await;
    let mut p = Peer::connected(&broker).await;
    for body in ["one", "two", "three"] {
        p.request(
            common::frame(
                stompede::codec::Command::Send,
                &[("destination", "/queue/kinds"), ("persistent", "true")],
            )
            .body(body.to_owned()),
        )
        .await;
    }
    let one = c.expect_message("one").await;
    let two = c.expect_message("two").await;
    let three = c.expect_message("three").await;
    let ack = |m: &stompede::codec::Frame| m.get("ack").expect("ack").to_owned();
    c.request(common::frame(
        stompede::codec::Command::Ack,
        &[("id", &ack(&one))],
    ))
    .await;
    c.request(common::frame(
        stompede::codec::Command::Nack,
        &[("id", &ack(&two))],
    ))
    .await;
    c.request(common::frame(
        stompede::codec::Command::Nack,
        &[("id", &ack(&three)), ("requeue", "false")],
    ))
    .await;
    c.expect_message("two").await;

    let after = scrape_until(&broker, |m| {
        try_metric(m, "stompede_messages_acked_total{kind=\"queue\"}") == Some(1)
            && try_metric(m, "stompede_messages_redelivered_total{kind=\"queue\"}") == Some(1)
    })
    .await;
    let queue = |name: &str| {
        metric(
            &after,
            &format!("stompede_messages_{name}_total{{kind=\"queue\"}}"),
        )
    };
    assert_eq!(queue("published"), 3);
    assert_eq!(queue("acked"), 1);
    assert_eq!(queue("nacked"), 2);
    assert_eq!(queue("redelivered"), 1);
    assert_eq!(queue("dead_lettered"), 1);
    assert_eq!(
        metric(&after, "stompede_messages_published_total{kind=\"topic\"}"),
        0
    );
    assert!(metric(&after, "stompede_store_fsync_seconds_count") > fsyncs);
    assert!(after.contains("stompede_store_fsync_seconds_bucket{le=\"+Inf\"}"));
    // The redelivered message is out again, unacked; the dead letter waits
    // in its queue.
    assert_eq!(
        metric(&after, "stompede_queue_unacked{queue=\"/queue/kinds\"}"),
        1
    );
    assert_eq!(
        metric(&after, "stompede_queue_depth{queue=\"/queue/dlq.kinds\"}"),
        1
    );
    assert_eq!(metric(&after, "stompede_queues_unacked"), 1);
}

#[tokio::test]
async fn metrics_count_frames_bytes_deliveries_and_latency_once_the_session_counts() {
    let broker = start().await;
    let (_, before) = get(&broker, "/metrics").await;
    let frames_in = |m: &str, c: &str| {
        metric(
            m,
            &format!("stompede_frames_received_total{{command=\"{c}\"}}"),
        )
    };
    let frames_out =
        |m: &str, c: &str| metric(m, &format!("stompede_frames_sent_total{{command=\"{c}\"}}"));
    let latency = metric(&before, "stompede_delivery_latency_seconds_count");
    let bytes_in = metric(&before, "stompede_bytes_received_total");
    let bytes_out = metric(&before, "stompede_bytes_sent_total");

    let mut t = Peer::connected(&broker).await;
    t.subscribe("t", "/topic/frames", "auto").await;
    let mut q = Peer::connected(&broker).await;
    q.subscribe("q", "/queue/frames", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/frames", "t1").await;
    p.publish("/topic/frames", "t2").await;
    p.publish("/queue/frames", "q1").await;
    t.expect_message("t1").await;
    t.expect_message("t2").await;
    q.expect_message("q1").await;

    let after = scrape_until(&broker, |m| {
        try_metric(m, "stompede_messages_delivered_total{kind=\"queue\"}") == Some(1)
    })
    .await;
    assert_eq!(
        frames_in(&after, "CONNECT"),
        frames_in(&before, "CONNECT") + 3
    );
    assert_eq!(
        frames_in(&after, "SUBSCRIBE"),
        frames_in(&before, "SUBSCRIBE") + 2
    );
    assert_eq!(frames_in(&after, "SEND"), frames_in(&before, "SEND") + 3);
    assert_eq!(
        frames_out(&after, "CONNECTED"),
        frames_out(&before, "CONNECTED") + 3
    );
    assert_eq!(
        frames_out(&after, "MESSAGE"),
        frames_out(&before, "MESSAGE") + 3
    );
    assert_eq!(
        frames_out(&after, "RECEIPT"),
        frames_out(&before, "RECEIPT") + 5
    );
    assert!(metric(&after, "stompede_bytes_received_total") > bytes_in + 100);
    assert!(metric(&after, "stompede_bytes_sent_total") > bytes_out + 100);
    assert_eq!(
        metric(&after, "stompede_messages_delivered_total{kind=\"topic\"}"),
        2
    );
    assert_eq!(
        metric(&after, "stompede_messages_delivered_total{kind=\"queue\"}"),
        1
    );
    assert_eq!(
        metric(&after, "stompede_delivery_latency_seconds_count"),
        latency + 3
    );

    // Per-connection counters: the publisher sent 3 SENDs after CONNECT
    // and got 3 RECEIPTs.
    let (_, body) = get(&broker, "/api/connections").await;
    let list = json_of(&body);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 3);
    assert!(list
        .iter()
        .any(|c| c["frames_in"] == 3 && c["frames_out"] == 3));
    assert!(list.iter().all(|c| c["bytes_in"].as_u64() > Some(0)));
}

#[tokio::test]
async fn queue_depth_metrics_are_bounded_to_the_deepest_queues() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    // /queue/d00 holds 1 message ... /queue/d24 holds 25: 25 queues, 325
    // messages.
    for i in 0..25 {
        let name = format!("/queue/d{i:02}");
        for _ in 0..=i {
            p.publish(&name, "x").await;
        }
    }
    let mut c = Peer::connected(&broker).await;
    c.request(common::frame(
        stompede::codec::Command::Subscribe,
        &[
            ("id", "c"),
            ("destination", "/queue/d24"),
            ("ack", "client"),
            ("prefetch-count", "5"),
        ],
    ))
    .await;
    c.expect_message("x").await;

    let m = scrape_until(&broker, |m| {
        try_metric(m, "stompede_queue_unacked{queue=\"/queue/d24\"}") == Some(5)
    })
    .await;
    let series = |prefix: &str| m.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(series("stompede_queue_depth{"), 20, "{m}");
    assert_eq!(series("stompede_queue_unacked{"), 20, "{m}");
    // The 20 deepest by messages held: d05 (6) .. d24 (20 ready + 5 out).
    assert_eq!(metric(&m, "stompede_queue_depth{queue=\"/queue/d24\"}"), 20);
    assert_eq!(
        metric(&m, "stompede_queue_unacked{queue=\"/queue/d24\"}"),
        5
    );
    assert_eq!(metric(&m, "stompede_queue_depth{queue=\"/queue/d05\"}"), 6);
    assert_eq!(
        metric(&m, "stompede_queue_unacked{queue=\"/queue/d05\"}"),
        0
    );
    assert!(try_metric(&m, "stompede_queue_depth{queue=\"/queue/d04\"}").is_none());
    assert!(try_metric(&m, "stompede_queue_depth{queue=\"/queue/d00\"}").is_none());
    // The deepest come first.
    assert!(m
        .lines()
        .find(|l| l.starts_with("stompede_queue_depth{"))
        .is_some_and(|l| l.contains("/queue/d24")));
    // The totals cover every queue.
    assert_eq!(metric(&m, "stompede_queues"), 25);
    assert_eq!(metric(&m, "stompede_queues_depth"), 320);
    assert_eq!(metric(&m, "stompede_queues_unacked"), 5);
    assert_eq!(metric(&m, "stompede_queues_consumers"), 1);
}

#[tokio::test]
async fn a_non_loopback_admin_address_is_refused() {
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = "0.0.0.0:0".into();
    let started = Broker::builder()
        .config(config)
        .store_in_memory()
        .build()
        .start()
        .await;
    assert!(started.is_err());
}

#[tokio::test]
async fn the_admin_api_lists_and_closes_connections() {
    let broker = start().await;
    let mut alice = Peer::connected_as(&broker, "alice").await;
    alice.subscribe("s", "/topic/a", "auto").await;
    let (status, body) = get(&broker, "/api/connections").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    let conn = &list.as_array().expect("array")[0];
    assert_eq!(conn["user"], "alice");
    assert_eq!(conn["transport"], "tcp");
    assert_eq!(conn["version"], "1.2");
    assert_eq!(conn["subscriptions"], 1);
    assert_eq!(conn["address"], "127.0.0.1");
    assert_eq!(conn["traced"], false);
    for counter in [
        "frames_in",
        "frames_out",
        "bytes_in",
        "bytes_out",
        "connected_ms",
    ] {
        assert!(conn[counter].is_u64(), "{counter} in {conn}");
    }
    for rate in ["frames_in", "frames_out", "bytes_in", "bytes_out"] {
        assert!(conn["rates"][rate].is_number(), "rate {rate} in {conn}");
    }
    let id = conn["id"].as_u64().expect("id");
    assert_eq!(
        post(&broker, &format!("/api/connections/close?id={id}"))
            .await
            .0,
        200
    );
    let e = alice.expect_error_and_close().await;
    assert!(e
        .get("message")
        .is_some_and(|m| m.contains("administrator")));
    assert_eq!(
        post(&broker, "/api/connections/close?id=999999").await.0,
        404
    );
}

#[tokio::test]
async fn the_admin_api_shows_and_purges_queues() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    for _ in 0..3 {
        p.publish("/queue/work", "job").await;
    }
    let (_, body) = get(&broker, "/api/queues").await;
    let queues: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(queues[0]["name"], "/queue/work");
    assert_eq!(queues[0]["ready"], 3);
    assert_eq!(queues[0]["consumers"], 0);
    let (status, body) = post(&broker, "/api/queues/purge?name=%2Fqueue%2Fwork").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"purged\": 3"), "{body}");
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/work", "auto").await;
    c.expect_silence(std::time::Duration::from_millis(150))
        .await;
}

#[tokio::test]
async fn the_admin_api_lists_and_deletes_durable_subscriptions() {
    let broker = start().await;
    let mut sub = Peer::connected_as(&broker, "reader").await;
    sub.request(common::frame(
        stompede::codec::Command::Subscribe,
        &[
            ("id", "feed"),
            ("destination", "/topic/news"),
            ("durable", "true"),
        ],
    ))
    .await;
    let (_, body) = get(&broker, "/api/durable-subscriptions").await;
    let subs: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(subs[0]["queue"], "/durable/reader/feed");
    assert_eq!(subs[0]["topic"], "/topic/news");
    let (status, _) = post(
        &broker,
        "/api/durable-subscriptions/delete?queue=/durable/reader/feed",
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = get(&broker, "/api/durable-subscriptions").await;
    assert_eq!(body.trim(), "[]");
}

#[tokio::test]
async fn the_admin_api_lists_destinations() {
    let broker = start().await;
    let mut a = Peer::connected(&broker).await;
    a.subscribe("a1", "/topic/prices", "auto").await;
    a.subscribe("a2", "/topic/news.*", "auto").await;
    let mut b = Peer::connected(&broker).await;
    b.subscribe("b1", "/topic/prices", "auto").await;
    b.subscribe("b2", "/queue/orders", "client").await;
    let mut p = Peer::connected(&broker).await;
    for _ in 0..2 {
        p.publish("/queue/backlog", "job").await;
    }

    let (status, body) = get(&broker, "/api/destinations").await;
    assert_eq!(status, 200);
    let d = json_of(&body);
    let topics = d["topics"].as_array().expect("topics");
    let topic = |name: &str| {
        topics
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    assert_eq!(topic("/topic/prices")["subscribers"], 2);
    assert_eq!(topic("/topic/prices")["pattern"], false);
    assert_eq!(topic("/topic/news.*")["subscribers"], 1);
    assert_eq!(topic("/topic/news.*")["pattern"], true);
    let queues = d["queues"].as_array().expect("queues");
    let queue = |name: &str| {
        queues
            .iter()
            .find(|q| q["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    assert_eq!(queue("/queue/backlog")["ready"], 2);
    assert_eq!(queue("/queue/backlog")["consumers"], 0);
    assert_eq!(queue("/queue/orders")["consumers"], 1);

    let (status, body) = get(&broker, "/api/topics").await;
    assert_eq!(status, 200);
    assert_eq!(json_of(&body).as_array().map(Vec::len), Some(2), "{body}");
}

#[tokio::test]
async fn the_admin_api_switches_frame_traces_on_and_off() {
    let broker = start().await;
    let _alice = Peer::connected_as(&broker, "alice").await;
    let traced = |body: &str, user: &str| {
        json_of(body)
            .as_array()
            .expect("array")
            .iter()
            .find(|c| c["user"] == user)
            .map(|c| c["traced"] == true)
            .unwrap_or_else(|| panic!("no {user} in {body}"))
    };
    let connections = || get(&broker, "/api/connections");

    let (status, body) = get(&broker, "/api/trace").await;
    assert_eq!((status, body.trim()), (200, "[]"));
    assert!(!traced(&connections().await.1, "alice"));

    let (status, body) = post(&broker, "/api/trace?user=alice").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["sessions"], 1);
    assert!(traced(&connections().await.1, "alice"));

    // An address rule also reaches sessions that connect later.
    let (status, body) = post(&broker, "/api/trace?address=127.0.0.1").await;
    assert_eq!(status, 200, "{body}");
    let _bob = Peer::connected_as(&broker, "bob").await;
    let list = connections().await.1;
    assert!(traced(&list, "alice") && traced(&list, "bob"));
    let (_, body) = get(&broker, "/api/trace").await;
    assert_eq!(
        json_of(&body),
        serde_json::json!([{ "user": "alice" }, { "address": "127.0.0.1" }])
    );

    // Off again: DELETE, or POST /api/trace/off. Alice keeps her own rule.
    let (status, body) = delete(&broker, "/api/trace?address=127.0.0.1").await;
    assert_eq!(status, 200, "{body}");
    let list = connections().await.1;
    assert!(traced(&list, "alice") && !traced(&list, "bob"));
    assert_eq!(post(&broker, "/api/trace/off?user=alice").await.0, 200);
    assert!(!traced(&connections().await.1, "alice"));
    assert_eq!(get(&broker, "/api/trace").await.1.trim(), "[]");

    assert_eq!(delete(&broker, "/api/trace?user=alice").await.0, 404);
    assert_eq!(post(&broker, "/api/trace?address=nope").await.0, 400);
    assert_eq!(post(&broker, "/api/trace").await.0, 400);
    assert_eq!(
        post(&broker, "/api/trace?user=a&address=127.0.0.1").await.0,
        400
    );
}

/// `Authorization: Basic` for `user:password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {token}\r\n")
}

#[tokio::test]
async fn admin_credentials_are_required_when_configured() {
    use stompede::security::users::hash_password;
    let dir = std::env::temp_dir().join(format!("stompede-admin-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"root\"\npassword = \"{}\"\nroles = [\"admin\"]\n\n\
             [[user]]\nname = \"guest\"\npassword = \"{}\"\n",
            hash_password("root-pw").unwrap(),
            hash_password("guest-pw").unwrap()
        ),
    )
    .unwrap();
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = "127.0.0.1:0".into();
    config.admin.require_login = true;
    config.auth.users_file = users.display().to_string();
    config.auth.failed_login_delay_ms = 10;
    let broker = common::launch(config.clone()).await;

    assert_eq!(get(&broker, "/api/connections").await.0, 401);
    assert_eq!(get(&broker, "/metrics").await.0, 401);
    let guest = basic("guest", "guest-pw");
    assert_eq!(
        http_with(&broker, "GET", "/api/connections", &guest)
            .await
            .0,
        401
    );
    let wrong = basic("root", "nope");
    assert_eq!(
        http_with(&broker, "GET", "/api/connections", &wrong)
            .await
            .0,
        401
    );
    let root = basic("root", "root-pw");
    assert_eq!(
        http_with(&broker, "GET", "/api/connections", &root).await.0,
        200
    );
    assert_eq!(http_with(&broker, "GET", "/metrics", &root).await.0, 200);
    // Probes stay open.
    assert_eq!(get(&broker, "/healthz").await.0, 200);
    assert_eq!(get(&broker, "/readyz").await.0, 200);
    broker.shutdown().await;

    // Off loopback, the admin listener needs a users file to start.
    config.listeners.admin = "0.0.0.0:0".into();
    config.auth.users_file = String::new();
    let refused = Broker::builder()
        .config(config)
        .store_in_memory()
        .build()
        .start()
        .await;
    let why = refused
        .err()
        .expect("refused without credentials")
        .to_string();
    assert!(why.contains("needs credentials"), "{why}");
    let _ = std::fs::remove_dir_all(&dir);
}
