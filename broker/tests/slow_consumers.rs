//! Slow consumer policies: a subscriber that stops reading never stalls the
//! publisher or other subscribers, and memory stays bounded.

mod common;

use common::{frame, Peer};
use std::time::Duration;
use stompede::codec::Command;
use stompede::config::SlowConsumerPolicy;
use stompede::BrokerHandle;

const MESSAGES: usize = 2000;

async fn broker(policy: SlowConsumerPolicy) -> BrokerHandle {
    common::start_in_process(|config| {
        config.delivery.outbox_capacity = 16;
        config.delivery.slow_consumer = policy;
    })
    .await
}

async fn connected(broker: &BrokerHandle) -> Peer<tokio::io::DuplexStream> {
    let mut p = Peer::new(broker.connect_in_process());
    p.connect("1.2", None).await;
    p
}

/// Publishes MESSAGES 1 KiB messages while `slow` reads nothing and `fast`
/// reads everything; returns the fast subscriber's count.
async fn flood(broker: &BrokerHandle, slow: &mut Peer<tokio::io::DuplexStream>) -> usize {
    slow.subscribe("slow", "/topic/flood", "auto").await;
    let mut fast = connected(broker).await;
    fast.subscribe("fast", "/topic/flood", "auto").await;
    let reader = tokio::spawn(async move {
        let mut n = 0;
        while n < MESSAGES {
            let m = fast.expect(Command::Message).await;
            assert_eq!(
                m.get("seq"),
                Some(n.to_string().as_str()),
                "in order, none lost"
            );
            n += 1;
        }
        n
    });
    let mut publisher = connected(broker).await;
    let body = "x".repeat(1024);
    let publish = async {
        for i in 0..MESSAGES {
            let seq = i.to_string();
            let send = frame(
                Command::Send,
                &[("destination", "/topic/flood"), ("seq", &seq)],
            )
            .body(body.clone());
            // A receipt now and then paces the publisher like a real
            // client, so a reader that keeps up is never "slow".
            if i % 8 == 7 {
                publisher.request(send).await;
            } else {
                publisher.send(send).await;
            }
        }
        publisher
            .request(frame(Command::Send, &[("destination", "/topic/other")]))
            .await;
    };
    tokio::time::timeout(Duration::from_secs(20), publish)
        .await
        .expect("the publisher is never stalled by a slow subscriber");
    tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the fast subscriber gets everything in time")
        .expect("reader task")
}

#[tokio::test]
async fn drop_oldest_keeps_the_publisher_and_others_going() {
    let broker = broker(SlowConsumerPolicy::DropOldest).await;
    let mut slow = connected(&broker).await;
    assert_eq!(flood(&broker, &mut slow).await, MESSAGES);
    let dropped = broker.stats().slow_consumer_drops.get();
    assert!(dropped > 0, "drops are counted");
    // The slow subscriber now reads: it lost the oldest messages, not the
    // newest, and what it got is in order.
    let mut last = None;
    let mut received = 0;
    while let Some(Some(m)) = slow.try_frame(Duration::from_millis(300)).await {
        let seq: usize = m.get("seq").and_then(|s| s.parse().ok()).expect("seq");
        assert!(last.is_none_or(|l| seq > l), "in order");
        last = Some(seq);
        received += 1;
    }
    assert_eq!(last, Some(MESSAGES - 1), "the newest message survives");
    assert_eq!(
        received as u64 + dropped,
        MESSAGES as u64,
        "every message is delivered or counted as dropped"
    );
}

#[tokio::test]
async fn disconnect_policy_closes_the_slow_subscriber_with_an_error() {
    let broker = broker(SlowConsumerPolicy::Disconnect).await;
    let mut slow = connected(&broker).await;
    assert_eq!(flood(&broker, &mut slow).await, MESSAGES);
    assert_eq!(broker.stats().slow_consumer_disconnects.get(), 1);
    loop {
        match slow.try_frame(Duration::from_secs(5)).await {
            Some(Some(f)) if f.command == Command::Message => continue,
            Some(Some(f)) => {
                assert_eq!(f.command, Command::Error);
                assert!(f
                    .get("message")
                    .is_some_and(|m| m.contains("slow consumer")));
                slow.expect_closed().await;
                return;
            }
            other => panic!("expected an ERROR, got {other:?}"),
        }
    }
}
