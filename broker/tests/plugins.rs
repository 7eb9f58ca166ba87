//! The plugin seam: hooks on connect, subscribe, send and disconnect.

mod common;

use common::{frame, Peer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stompede::codec::{Command, Headers};
use stompede::config::Config;
use stompede::plugin::{Plugin, Refusal, SessionInfo};
use stompede::Broker;

#[derive(Default)]
struct Guard {
    disconnects: Arc<AtomicUsize>,
}

impl Plugin for Guard {
    fn name(&self) -> &str {
        "guard"
    }

    fn on_connect(&self, session: &SessionInfo) -> Result<(), Refusal> {
        match session.user.as_deref() {
            Some("mallory") => Err(Refusal("mallory is banned".into())),
            _ => Ok(()),
        }
    }

    fn on_subscribe(&self, _session: &SessionInfo, destination: &str) -> Result<(), Refusal> {
        if destination.starts_with("/topic/secret") {
            return Err(Refusal("no secrets".into()));
        }
        Ok(())
    }

    fn on_send(
        &self,
        session: &SessionInfo,
        _destination: &str,
        headers: &mut Headers,
    ) -> Result<(), Refusal> {
        let user = session.user.clone().unwrap_or_default();
        headers.set("x-sender", user);
        Ok(())
    }

    fn on_disconnect(&self, _session: &SessionInfo) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
    }
}

async fn broker(disconnects: Arc<AtomicUsize>) -> stompede::BrokerHandle {
    let mut config = Config::default();
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    Broker::builder()
        .config(config)
        .store_in_memory()
        .plugin(Guard { disconnects })
        .build()
        .start()
        .await
        .expect("start")
}

#[tokio::test]
async fn plugins_can_refuse_connect_and_subscribe_and_stamp_sends() {
    let disconnects = Arc::new(AtomicUsize::new(0));
    let broker = broker(Arc::clone(&disconnects)).await;

    let mut mallory = Peer::tcp(&broker).await;
    mallory
        .raw(b"CONNECT\naccept-version:1.2\nhost:x\nlogin:mallory\n\n\0")
        .await;
    let e = mallory.expect_error_and_close().await;
    assert_eq!(e.get("message"), Some("mallory is banned"));

    let mut alice = Peer::connected_as(&broker, "alice").await;
    alice.subscribe("1", "/topic/public", "auto").await;
    let mut bob = Peer::connected_as(&broker, "bob").await;
    bob.request(
        frame(
            Command::Send,
            &[("destination", "/topic/public"), ("x-sender", "forged")],
        )
        .body("hi"),
    )
    .await;
    let m = alice.expect_message("hi").await;
    assert_eq!(m.get("x-sender"), Some("bob"));

    bob.raw(b"SUBSCRIBE\nid:s\ndestination:/topic/secret.plans\n\n\0")
        .await;
    assert_eq!(
        bob.expect_error_and_close().await.get("message"),
        Some("no secrets")
    );
    drop(alice);
    // bob's session ended with the ERROR, alice's with the drop.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while disconnects.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "on_disconnect not called"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
