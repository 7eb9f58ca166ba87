//! Competing consumers on /queue/ destinations: ack modes, prefetch,
//! redelivery, and waiting messages.

mod common;

use common::{frame, start, start_with, Peer};
use std::collections::HashSet;
use std::time::Duration;
use stompede::codec::Command;
use stompede::config::{Config, QueueOverflowPolicy};

#[tokio::test]
async fn each_message_goes_to_exactly_one_consumer_round_robin() {
    let broker = start().await;
    let mut a = Peer::connected(&broker).await;
    let mut b = Peer::connected(&broker).await;
    a.subscribe("a", "/queue/work", "auto").await;
    b.subscribe("b", "/queue/work", "auto").await;
    let mut p = Peer::connected(&broker).await;
    for i in 0..10 {
        p.publish("/queue/work", &i.to_string()).await;
    }
    let mut seen = HashSet::new();
    for peer in [&mut a, &mut b] {
        for _ in 0..5 {
            let m = peer.expect(Command::Message).await;
            assert!(seen.insert(m.body.clone()), "duplicate delivery");
        }
        peer.expect_silence(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 10);
}

#[tokio::test]
async fn messages_wait_in_the_queue_until_a_consumer_comes() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/later", "1").await;
    p.publish("/queue/later", "2").await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/later", "auto").await;
    c.expect_message("1").await;
    c.expect_message("2").await;
}

#[tokio::test]
async fn nack_redelivers_flagged_redelivered() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/nack", "client-individual").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/nack", "again").await;
    let m = c.expect_message("again").await;
    assert_eq!(m.get("redelivered"), None);
    let ack = m.get("ack").expect("ack header in client mode").to_owned();
    c.request(frame(Command::Nack, &[("id", &ack)])).await;
    let again = c.expect_message("again").await;
    assert_eq!(again.get("redelivered"), Some("true"));
    assert_eq!(again.get("message-id"), m.get("message-id"));
    c.request(frame(
        Command::Ack,
        &[("id", again.get("ack").expect("ack"))],
    ))
    .await;
    c.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn unacked_messages_of_a_disconnected_consumer_go_to_another() {
    let broker = start().await;
    let mut first = Peer::connected(&broker).await;
    first.subscribe("f", "/queue/crash", "client").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/crash", "m1").await;
    p.publish("/queue/crash", "m2").await;
    first.expect_message("m1").await;
    first.expect_message("m2").await;
    drop(first);
    let mut second = Peer::connected(&broker).await;
    second
        .subscribe("s", "/queue/crash", "client-individual")
        .await;
    let m1 = second.expect_message("m1").await;
    let m2 = second.expect_message("m2").await;
    assert_eq!(m1.get("redelivered"), Some("true"));
    assert_eq!(m2.get("redelivered"), Some("true"));
}

#[tokio::test]
async fn unsubscribe_returns_unacked_messages() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/unsub", "client-individual").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/unsub", "back").await;
    c.expect_message("back").await;
    c.request(frame(Command::Unsubscribe, &[("id", "c")])).await;
    c.subscribe("c2", "/queue/unsub", "auto").await;
    let m = c.expect_message("back").await;
    assert_eq!(m.get("redelivered"), Some("true"));
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/cumulative", "client").await;
    let mut p = Peer::connected(&broker).await;
    for i in 0..3 {
        p.publish("/queue/cumulative", &i.to_string()).await;
    }
    let mut last = None;
    for i in 0..3 {
        last = Some(c.expect_message(&i.to_string()).await);
    }
    let last = last.expect("three messages");
    c.request(frame(
        Command::Ack,
        &[("id", last.get("ack").expect("ack"))],
    ))
    .await;
    // Nothing is redelivered once this consumer leaves: all three are acked.
    drop(c);
    let mut d = Peer::connected(&broker).await;
    d.subscribe("d", "/queue/cumulative", "auto").await;
    d.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn client_individual_ack_acks_only_that_message() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/individual", "client-individual")
        .await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/individual", "a").await;
    p.publish("/queue/individual", "b").await;
    c.expect_message("a").await;
    let b = c.expect_message("b").await;
    c.request(frame(Command::Ack, &[("id", b.get("ack").expect("ack"))]))
        .await;
    drop(c);
    let mut d = Peer::connected(&broker).await;
    d.subscribe("d", "/queue/individual", "auto").await;
    let a = d.expect_message("a").await;
    assert_eq!(a.get("redelivered"), Some("true"));
    d.expect_silence(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn prefetch_count_bounds_unacked_deliveries() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.request(frame(
        Command::Subscribe,
        &[
            ("id", "c"),
            ("destination", "/queue/prefetch"),
            ("ack", "client-individual"),
            ("prefetch-count", "2"),
        ],
    ))
    .await;
    let mut p = Peer::connected(&broker).await;
    for i in 0..5 {
        p.publish("/queue/prefetch", &i.to_string()).await;
    }
    let m0 = c.expect_message("0").await;
    c.expect_message("1").await;
    c.expect_silence(Duration::from_millis(150)).await;
    c.request(frame(Command::Ack, &[("id", m0.get("ack").expect("ack"))]))
        .await;
    c.expect_message("2").await;
    c.expect_silence(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn ack_headers_per_version_1_1_and_1_0() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;

    let mut v11 = Peer::tcp(&broker).await;
    v11.connect("1.1", None).await;
    v11.subscribe("s11", "/queue/v11", "client-individual")
        .await;
    p.publish("/queue/v11", "x").await;
    let m = v11.expect_message("x").await;
    assert_eq!(m.get("ack"), None, "1.1 has no ack header");
    let id = m.get("message-id").expect("message-id").to_owned();
    v11.request(frame(
        Command::Ack,
        &[("message-id", &id), ("subscription", "s11")],
    ))
    .await;

    let mut v10 = Peer::tcp(&broker).await;
    v10.raw(b"CONNECT\n\n\0").await;
    v10.expect(Command::Connected).await;
    v10.subscribe("s10", "/queue/v10", "client").await;
    p.publish("/queue/v10", "y").await;
    let m = v10.expect_message("y").await;
    let id = m.get("message-id").expect("message-id").to_owned();
    v10.request(frame(Command::Ack, &[("message-id", &id)]))
        .await;

    // Both were acknowledged: new consumers get nothing.
    drop(v11);
    drop(v10);
    let mut check = Peer::connected(&broker).await;
    check.subscribe("a", "/queue/v11", "auto").await;
    check.subscribe("b", "/queue/v10", "auto").await;
    check.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn nack_is_refused_in_1_0() {
    let broker = start().await;
    let mut v10 = Peer::tcp(&broker).await;
    v10.raw(b"CONNECT\n\n\0").await;
    v10.expect(Command::Connected).await;
    v10.raw(b"NACK\nmessage-id:m-1\n\n\0").await;
    v10.expect_error_and_close().await;
}

#[tokio::test]
async fn a_full_queue_rejects_new_messages() {
    let mut config = Config::default();
    config.queues.defaults.max_length = 2;
    config.queues.defaults.overflow = QueueOverflowPolicy::Reject;
    let broker = start_with(config).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/small", "1").await;
    p.publish("/queue/small", "2").await;
    p.raw(b"SEND\ndestination:/queue/small\nreceipt:third\n\n3\0")
        .await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("third"));
    assert!(e.get("message").is_some_and(|m| m.contains("full")));
    assert_eq!(broker.stats().queue_overflows.get(), 1);
}

#[tokio::test]
async fn drop_oldest_overflow_keeps_the_newest() {
    let mut config = Config::default();
    config.queues.defaults.max_length = 2;
    config.queues.defaults.overflow = QueueOverflowPolicy::DropOldest;
    let broker = start_with(config).await;
    let mut p = Peer::connected(&broker).await;
    for i in 1..=3 {
        p.publish("/queue/rolling", &i.to_string()).await;
    }
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/rolling", "auto").await;
    c.expect_message("2").await;
    c.expect_message("3").await;
}
