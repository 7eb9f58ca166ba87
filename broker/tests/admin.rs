//! The admin HTTP listener: health, readiness and Prometheus metrics that
//! move as frames flow.

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
    let mut s = tokio::net::TcpStream::connect(broker.admin_addr().expect("admin listener"))
        .await
        .expect("connect");
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
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

/// The value of metric `name` in a Prometheus text body.
fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
}

#[tokio::test]
async fn health_and_readiness() {
    let broker = start().await;
    assert_eq!(get(&broker, "/healthz").await.0, 200);
    assert_eq!(get(&broker, "/readyz").await.0, 200);
    assert_eq!(get(&broker, "/nope").await.0, 404);
    let (status, page) = get(&broker, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>Stompede status</title>") && page.contains("/api/queues"));
}

#[tokio::test]
async fn metrics_move_as_frames_flow() {
    let broker = start().await;
    let (status, before) = get(&broker, "/metrics").await;
    assert_eq!(status, 200);
    assert!(before.contains("# TYPE stompede_messages_published_total counter"));
    let published = metric(&before, "stompede_messages_published_total");
    let delivered = metric(&before, "stompede_messages_delivered_total");

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
    assert_eq!(
        metric(&after, "stompede_messages_published_total"),
        published + 4
    );
    assert_eq!(
        metric(&after, "stompede_messages_delivered_total"),
        delivered + 3
    );
    assert_eq!(metric(&after, "stompede_errors_sent_total"), 1);
    assert!(metric(&after, "stompede_connections_accepted_total") >= 2);
    assert_eq!(metric(&after, "stompede_queues"), 1);
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
