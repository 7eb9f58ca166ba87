//! Persistent messages, restarts, durable subscriptions and message
//! lifetime (expiry, dead letters, priorities, limits, store failures).
//! Restarts here reuse one store between two broker instances; the
//! crash_recovery tests kill the real binary on a sled directory.

mod common;

use common::{frame, Peer};
use std::sync::Arc;
use std::time::Duration;
use stompede::codec::Command;
use stompede::config::{Config, QueuePolicy, QueueSettings};
use stompede::store::{MemoryStore, Store, StoreError, StoredQueue};
use stompede::{Broker, BrokerHandle};

const QUIET: Duration = Duration::from_millis(200);

async fn start(store: Arc<dyn Store>, config: Config) -> BrokerHandle {
    let mut config = config;
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    Broker::builder()
        .config(config)
        .store(store)
        .build()
        .start()
        .await
        .expect("start")
}

async fn send_persistent(p: &mut Peer<tokio::net::TcpStream>, destination: &str, body: &str) {
    p.request(
        frame(
            Command::Send,
            &[("destination", destination), ("persistent", "true")],
        )
        .body(body.to_owned()),
    )
    .await;
}

#[tokio::test]
async fn persistent_messages_survive_a_restart_and_transient_ones_do_not() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let broker = start(Arc::clone(&store), Config::default()).await;
    let mut p = Peer::connected(&broker).await;
    send_persistent(&mut p, "/queue/keep", "p1").await;
    p.publish("/queue/keep", "transient").await;
    send_persistent(&mut p, "/queue/keep", "p2").await;
    send_persistent(&mut p, "/queue/keep", "acked").await;
    let mut c = Peer::connected(&broker).await;
    c.request(frame(
        Command::Subscribe,
        &[
            ("id", "c"),
            ("destination", "/queue/keep"),
            ("ack", "client-individual"),
        ],
    ))
    .await;
    let mut acked_one = false;
    for _ in 0..4 {
        let m = c.expect(Command::Message).await;
        if &m.body[..] == b"acked" {
            c.request(frame(Command::Ack, &[("id", m.get("ack").expect("ack"))]))
                .await;
            acked_one = true;
        }
    }
    assert!(acked_one);
    broker.shutdown().await;

    let broker = start(store, Config::default()).await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/keep", "client-individual").await;
    let a = c.expect_message("p1").await;
    let b = c.expect_message("p2").await;
    // They were delivered (unacked) before the restart.
    assert_eq!(a.get("redelivered"), Some("true"));
    assert_eq!(b.get("redelivered"), Some("true"));
    assert_eq!(a.get("persistent"), Some("true"));
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_durable_queue_stores_every_message() {
    let mut config = Config::default();
    config.queues.policies.push(QueuePolicy {
        pattern: "/queue/orders.*".into(),
        settings: QueueSettings {
            durable: true,
            ..QueueSettings::default()
        },
    });
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let broker = start(Arc::clone(&store), config.clone()).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/orders.eu", "kept").await;
    p.publish("/queue/other", "lost").await;
    broker.shutdown().await;
    let broker = start(store, config).await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("a", "/queue/orders.eu", "auto").await;
    c.subscribe("b", "/queue/other", "auto").await;
    c.expect_message("kept").await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn durable_topic_subscriptions_collect_messages_while_away_and_across_restarts() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    let broker = start(Arc::clone(&store), Config::default()).await;
    let durable_sub = |id: &str| {
        frame(
            Command::Subscribe,
            &[
                ("id", id),
                ("destination", "/topic/news.*"),
                ("durable", "true"),
                ("auto-delete", "false"),
                ("ack", "client-individual"),
            ],
        )
    };
    let mut sub = Peer::connected_as(&broker, "reader").await;
    sub.request(durable_sub("feed")).await;
    sub.raw(b"DISCONNECT\nreceipt:bye\n\n\0").await;
    sub.expect(Command::Receipt).await;

    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/news.sport", "while away 1").await;
    p.publish("/topic/weather", "not matching").await;
    p.publish("/topic/news.tech", "while away 2").await;
    broker.shutdown().await;

    let broker = start(Arc::clone(&store), Config::default()).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/news.world", "after restart").await;
    let mut sub = Peer::connected_as(&broker, "reader").await;
    sub.request(durable_sub("feed")).await;
    for body in ["while away 1", "while away 2", "after restart"] {
        let m = sub.expect_message(body).await;
        sub.request(frame(Command::Ack, &[("id", m.get("ack").expect("ack"))]))
            .await;
    }
    sub.expect_silence(QUIET).await;

    // Another user's subscription with the same id is a different one.
    let mut other = Peer::connected_as(&broker, "someone-else").await;
    other.request(durable_sub("feed")).await;
    other.expect_silence(QUIET).await;

    // UNSUBSCRIBE durable:true removes it: nothing accumulates any more.
    sub.request(frame(
        Command::Unsubscribe,
        &[("id", "feed"), ("durable", "true")],
    ))
    .await;
    p.publish("/topic/news.late", "nobody keeps this").await;
    sub.request(durable_sub("feed")).await;
    sub.expect_silence(QUIET).await;
}

/// Connects with CONNECT `client-id:app-7` and (re)subscribes ActiveMQ
/// style to durable subscription `s` on `/topic/t`.
async fn activemq_subscriber(broker: &BrokerHandle, id: &str) -> Peer<tokio::net::TcpStream> {
    let mut sub = Peer::tcp(broker).await;
    sub.raw(b"CONNECT\naccept-version:1.2\nhost:x\nclient-id:app-7\n\n\0")
        .await;
    sub.expect(Command::Connected).await;
    sub.request(frame(
        Command::Subscribe,
        &[
            ("id", id),
            ("destination", "/topic/t"),
            ("activemq.subscriptionName", "s"),
        ],
    ))
    .await;
    sub
}

#[tokio::test]
async fn activemq_style_durable_subscriptions_use_client_id() {
    let broker = start(Arc::new(MemoryStore::default()), Config::default()).await;
    drop(activemq_subscriber(&broker, "1").await);
    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/t", "kept for app-7").await;
    let mut sub = activemq_subscriber(&broker, "2").await;
    sub.expect_message("kept for app-7").await;
}

#[tokio::test]
async fn durable_subscriptions_need_an_owner() {
    let broker = start(Arc::new(MemoryStore::default()), Config::default()).await;
    let mut anon = Peer::connected(&broker).await;
    anon.raw(b"SUBSCRIBE\nid:1\ndestination:/topic/t\ndurable:true\n\n\0")
        .await;
    anon.expect_error_and_close().await;
}

#[tokio::test]
async fn expired_messages_are_never_delivered() {
    let mut config = Config::default();
    config.queues.policies.push(QueuePolicy {
        pattern: "/queue/short".into(),
        settings: QueueSettings {
            ttl_ms: 100,
            ..QueueSettings::default()
        },
    });
    let broker = start(Arc::new(MemoryStore::default()), config).await;
    let mut p = Peer::connected(&broker).await;
    p.request(
        frame(
            Command::Send,
            &[("destination", "/queue/e"), ("expires", "1")],
        )
        .body("old"),
    )
    .await;
    let far = "99999999999999";
    p.request(
        frame(
            Command::Send,
            &[("destination", "/queue/e"), ("expires", far)],
        )
        .body("fresh"),
    )
    .await;
    p.publish("/queue/short", "ttl").await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("e", "/queue/e", "auto").await;
    c.subscribe("s", "/queue/short", "auto").await;
    c.expect_message("fresh").await;
    c.expect_silence(QUIET).await;
    assert_eq!(broker.stats().messages_expired.get(), 2);
}

#[tokio::test]
async fn messages_out_of_deliveries_or_rejected_go_to_the_dead_letter_queue() {
    let mut config = Config::default();
    config.queues.defaults.max_deliveries = 2;
    let broker = start(Arc::new(MemoryStore::default()), config).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/jobs", "poison").await;
    p.publish("/queue/jobs", "refused").await;
    let mut c = Peer::connected(&broker).await;
    c.request(frame(
        Command::Subscribe,
        &[
            ("id", "c"),
            ("destination", "/queue/jobs"),
            ("ack", "client-individual"),
            ("prefetch-count", "1"),
        ],
    ))
    .await;
    for _ in 0..2 {
        let m = c.expect_message("poison").await;
        c.request(frame(Command::Nack, &[("id", m.get("ack").expect("ack"))]))
            .await;
    }
    let m = c.expect_message("refused").await;
    c.request(frame(
        Command::Nack,
        &[("id", m.get("ack").expect("ack")), ("requeue", "false")],
    ))
    .await;
    c.expect_silence(QUIET).await;

    let mut dlq = Peer::connected(&broker).await;
    dlq.subscribe("d", "/queue/dlq.jobs", "auto").await;
    let first = dlq.expect_message("poison").await;
    assert_eq!(first.get("x-dead-letter-reason"), Some("max-deliveries"));
    assert_eq!(first.get("x-original-destination"), Some("/queue/jobs"));
    assert_eq!(first.get("x-delivery-count"), Some("2"));
    let second = dlq.expect_message("refused").await;
    assert_eq!(second.get("x-dead-letter-reason"), Some("rejected"));
    assert_eq!(broker.stats().messages_dead_lettered.get(), 2);
}

#[tokio::test]
async fn higher_priority_messages_are_delivered_first() {
    let broker = start(Arc::new(MemoryStore::default()), Config::default()).await;
    let mut p = Peer::connected(&broker).await;
    for (body, priority) in [("low", "1"), ("none", ""), ("high", "9"), ("high too", "9")] {
        let mut f = frame(Command::Send, &[("destination", "/queue/prio")]).body(body);
        if !priority.is_empty() {
            f = f.header("priority", priority);
        }
        p.request(f).await;
    }
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/prio", "auto").await;
    for body in ["high", "high too", "none", "low"] {
        c.expect_message(body).await;
    }
}

#[tokio::test]
async fn a_byte_limit_rejects_what_does_not_fit() {
    let mut config = Config::default();
    config.queues.defaults.max_bytes = 10;
    let broker = start(Arc::new(MemoryStore::default()), config).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/bytes", "123456").await;
    p.raw(b"SEND\ndestination:/queue/bytes\nreceipt:r\n\n123456\0")
        .await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("r"));
}

/// A store whose disk is full.
#[derive(Default)]
struct FullDisk;

impl Store for FullDisk {
    fn save(&self, _: &str, _: u64, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError("No space left on device".into()))
    }
    fn delete(&self, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
    fn load(&self) -> Result<Vec<StoredQueue>, StoreError> {
        Ok(Vec::new())
    }
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn put_meta(&self, _: &str, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError("No space left on device".into()))
    }
    fn delete_meta(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn list_meta(&self, _: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_store_failure_refuses_the_persistent_message_and_keeps_serving() {
    let broker = start(Arc::new(FullDisk), Config::default()).await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/queue/q\npersistent:true\nreceipt:p\n\nx\0")
        .await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("p"));
    assert!(
        e.get("message")
            .is_some_and(|m| m.contains("No space left")),
        "{e:?}"
    );

    let mut q = Peer::connected(&broker).await;
    q.publish("/queue/q", "transient still works").await;
    q.subscribe("c", "/queue/q", "auto").await;
    q.expect_message("transient still works").await;
}

#[tokio::test]
async fn pipelined_persistent_sends_get_every_receipt_and_disconnect_waits_for_them() {
    let broker = start(Arc::new(MemoryStore::default()), Config::default()).await;
    let mut p = Peer::connected(&broker).await;
    let mut bytes = Vec::new();
    for i in 0..500 {
        bytes.extend_from_slice(
            format!("SEND\ndestination:/queue/pipe\npersistent:true\nreceipt:{i}\n\n{i}\0")
                .as_bytes(),
        );
    }
    bytes.extend_from_slice(b"DISCONNECT\nreceipt:bye\n\n\0");
    p.raw(&bytes).await;
    let mut seen = std::collections::HashSet::new();
    loop {
        let r = p.expect(Command::Receipt).await;
        let id = r.get("receipt-id").expect("receipt-id").to_owned();
        if id == "bye" {
            break;
        }
        assert!(seen.insert(id), "each RECEIPT once");
    }
    assert_eq!(
        seen.len(),
        500,
        "the DISCONNECT RECEIPT comes after all the others"
    );
    p.expect_closed().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/pipe", "auto").await;
    for i in 0..500 {
        c.expect_message(&i.to_string()).await;
    }
}
