//! Configured limits, and graceful shutdown.

mod common;

use common::{frame, start, start_with, Peer};
use std::time::Duration;
use stompede::codec::Command;
use stompede::config::Config;
use tokio::io::AsyncReadExt;

#[tokio::test]
async fn subscriptions_per_connection_are_limited() {
    let mut config = Config::default();
    config.limits.max_subscriptions_per_connection = 2;
    let broker = start_with(config).await;
    let mut p = Peer::connected(&broker).await;
    p.subscribe("1", "/topic/a", "auto").await;
    p.subscribe("2", "/topic/b", "auto").await;
    p.raw(b"SUBSCRIBE\nid:3\ndestination:/topic/c\n\n\0").await;
    let e = p.expect_error_and_close().await;
    assert!(e
        .get("message")
        .is_some_and(|m| m.contains("too many subscriptions")));
}

#[tokio::test]
async fn oversized_bodies_get_an_error() {
    let mut config = Config::default();
    config.limits.max_body_bytes = 1024;
    let broker = start_with(config).await;
    let mut p = Peer::connected(&broker).await;
    let mut send = b"SEND\ndestination:/topic/big\ncontent-length:4096\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'x', 4096));
    send.push(0);
    p.raw(&send).await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let mut config = Config::default();
    config.limits.max_connections = 2;
    let broker = start_with(config).await;
    let _a = Peer::connected(&broker).await;
    let _b = Peer::connected(&broker).await;
    let mut c = tokio::net::TcpStream::connect(broker.tcp_addr().expect("tcp"))
        .await
        .expect("connect");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
        .await
        .expect("closed in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("ERROR\n"), "{text}");
    assert!(text.contains("too many connections"), "{text}");
    assert_eq!(broker.stats().connections_refused.get(), 1);
}

#[tokio::test]
async fn shutdown_closes_sessions_and_listeners_within_the_grace_period() {
    let mut config = Config::default();
    config.shutdown.grace_ms = 2000;
    let broker = start_with(config).await;
    let addr = broker.tcp_addr().expect("tcp");
    let mut p = Peer::connected(&broker).await;
    p.subscribe("1", "/topic/s", "auto").await;
    let started = std::time::Instant::now();
    broker.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "idle sessions close at once"
    );
    p.expect_closed().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn the_in_process_client_publishes_subscribes_and_acks() {
    let broker = start().await;
    let mut worker = broker.client(Some("worker")).await.expect("client");
    worker
        .subscribe("jobs", "/queue/jobs", "client-individual")
        .await
        .expect("subscribe");
    let mut tcp = Peer::connected(&broker).await;
    tcp.request(frame(Command::Send, &[("destination", "/queue/jobs")]).body("job 1"))
        .await;
    let m = worker.next_message().await.expect("message");
    assert_eq!(&m.body[..], b"job 1");
    worker.ack(&m).await.expect("ack");
    tcp.subscribe("t", "/topic/done", "auto").await;
    worker.send("/topic/done", "finished").await.expect("send");
    tcp.expect_message("finished").await;
    worker.disconnect().await.expect("disconnect");
}
