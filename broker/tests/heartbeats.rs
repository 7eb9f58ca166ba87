//! Heart-beats and timeouts, on paused time through in-process connections
//! (no sockets, so the virtual clock is exact).

mod common;

use common::Peer;
use futures_util::StreamExt;
use std::time::Duration;
use stompede::codec::{Command, Item};
use stompede::config::Config;
use tokio::time::Instant;

async fn broker(adjust: impl FnOnce(&mut Config)) -> stompede::BrokerHandle {
    common::start_in_process(adjust).await
}

#[tokio::test(start_paused = true)]
async fn the_broker_sends_heart_beats_at_the_negotiated_interval() {
    let broker = broker(|c| c.heartbeat.send_ms = 100).await;
    let mut p = Peer::new(broker.connect_in_process());
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,250\n\n\0")
        .await;
    let c = p.expect(Command::Connected).await;
    assert_eq!(c.get("heart-beat"), Some("100,10000"));
    let start = Instant::now();
    for n in 1..=3u32 {
        match p.framed.next().await {
            Some(Ok(Item::HeartBeat)) => {}
            other => panic!("expected a heart-beat, got {other:?}"),
        }
        // max(ours 100, theirs 250) = 250 ms between EOLs.
        assert_eq!(start.elapsed().as_millis() / 10, (250 * n as u128) / 10);
    }
}

#[tokio::test(start_paused = true)]
async fn no_heart_beats_when_the_client_asks_for_none() {
    let broker = broker(|c| c.heartbeat.send_ms = 100).await;
    let mut p = Peer::new(broker.connect_in_process());
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:0,0\n\n\0")
        .await;
    p.expect(Command::Connected).await;
    let got = tokio::time::timeout(Duration::from_secs(60), p.framed.next()).await;
    assert!(got.is_err(), "nothing should arrive: {got:?}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_after_the_grace_period() {
    let broker = broker(|c| {
        c.heartbeat.receive_ms = 100;
        c.heartbeat.grace_factor = 3.0;
    })
    .await;
    let mut p = Peer::new(broker.connect_in_process());
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:200,0\n\n\0")
        .await;
    p.expect(Command::Connected).await;
    let start = Instant::now();
    p.expect_closed().await;
    // max(client 200, broker 100) x 3 = 600 ms of silence.
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(600),
        "closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(700),
        "closed after {waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_keeps_beating_stays_connected() {
    let broker = broker(|c| {
        c.heartbeat.receive_ms = 100;
        c.heartbeat.grace_factor = 2.0;
    })
    .await;
    let mut p = Peer::new(broker.connect_in_process());
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:100,0\n\n\0")
        .await;
    p.expect(Command::Connected).await;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.raw(b"\n").await;
    }
    p.subscribe("still", "/topic/alive", "auto").await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_connect_is_closed_after_the_timeout() {
    let broker = broker(|c| c.limits.connect_timeout_ms = 500).await;
    let mut p = Peer::new(broker.connect_in_process());
    let start = Instant::now();
    let e = p.expect_error_and_close().await;
    assert!(e.get("message").is_some_and(|m| m.contains("timeout")));
    assert_eq!(start.elapsed().as_millis() / 10, 50);
}

#[tokio::test(start_paused = true)]
async fn stomp_1_0_sessions_have_no_heart_beats() {
    let broker = broker(|c| c.heartbeat.send_ms = 100).await;
    let mut p = Peer::new(broker.connect_in_process());
    p.raw(b"CONNECT\nheart-beat:100,100\n\n\0").await;
    let c = p.expect(Command::Connected).await;
    assert_eq!(c.get("version"), Some("1.0"));
    let got = tokio::time::timeout(Duration::from_secs(30), p.framed.next()).await;
    assert!(got.is_err(), "1.0 must stay quiet: {got:?}");
}
