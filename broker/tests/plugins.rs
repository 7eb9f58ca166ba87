//! The plugin seam: hooks on connect, subscribe, send and disconnect, and
//! destinations a plugin owns and answers through session mailboxes.
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use bytestring::ByteString;
use common::{frame, Peer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stompede::codec::{Command, Headers};
use stompede::config::Config;
use stompede::plugin::{
    Mailbox, OwnedSend, OwnedSubscribe, Plugin, ReceiptTiming, Refusal, SessionInfo,
};
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
            Some("mallory") => Err(Refusal::new("mallory is banned")),
            _ => Ok(()),
        }
    }

    fn on_subscribe(&self, _session: &SessionInfo, destination: &str) -> Result<(), Refusal> {
        if destination.starts_with("/topic/secret") {
            return Err(Refusal::new("no secrets"));
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
    // mallory's refused CONNECT is not paired with an on_disconnect.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(disconnects.load(Ordering::SeqCst), 2);
}

/// Owns `/log/`: every SEND is numbered, kept, and delivered to the
/// subscribers; a SUBSCRIBE first replays what is kept; the RECEIPT of a
/// SEND carries its number. `/log/closed` is softly refused.
#[derive(Default)]
struct Log {
    state: std::sync::Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    kept: Vec<Arc<stompede::Message>>,
    subscribers: Vec<(u64, ByteString, Mailbox)>,
    unsubscribed: usize,
}

impl Plugin for Log {
    fn name(&self) -> &str {
        "log"
    }

    fn owned_prefixes(&self) -> Vec<String> {
        vec!["/log/".into()]
    }

    fn on_owned_send(
        &self,
        session: &SessionInfo,
        send: OwnedSend,
    ) -> Result<ReceiptTiming, Refusal> {
        if &*send.destination == "/log/closed" {
            return Err(Refusal::soft("the log is closed"));
        }
        let mut state = self.state.lock().unwrap();
        let seq = state.kept.len() + 1;
        let mut headers = Headers::new();
        headers.push("x-seq", seq.to_string());
        let message = Arc::new(stompede::Message::restored(
            send.destination.clone(),
            ByteString::from(format!("log:{seq}")),
            headers.clone(),
            send.body,
        ));
        state.kept.push(Arc::clone(&message));
        for (_, id, mailbox) in &state.subscribers {
            mailbox.deliver(id.clone(), Arc::clone(&message));
        }
        if let Some(receipt) = send.receipt {
            session.mailbox.receipt(receipt, headers);
        }
        Ok(ReceiptTiming::Later)
    }

    fn on_owned_subscribe(
        &self,
        session: &SessionInfo,
        subscribe: OwnedSubscribe,
    ) -> Result<(), Refusal> {
        let mut state = self.state.lock().unwrap();
        for message in &state.kept {
            session
                .mailbox
                .deliver_reliably(subscribe.id.clone(), Arc::clone(message));
        }
        state
            .subscribers
            .push((session.session_id, subscribe.id, session.mailbox.clone()));
        Ok(())
    }

    fn on_owned_unsubscribe(&self, session: &SessionInfo, subscription: &ByteString) {
        let mut state = self.state.lock().unwrap();
        state
            .subscribers
            .retain(|(s, id, _)| !(*s == session.session_id && id == subscription));
        state.unsubscribed += 1;
    }
}

#[tokio::test]
async fn a_plugin_serves_the_destinations_it_owns() {
    let log = Arc::new(Log::default());
    let mut config = Config::default();
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    let broker = Broker::builder()
        .config(config)
        .store_in_memory()
        .shared_plugin(Arc::clone(&log) as Arc<dyn Plugin>)
        .build()
        .start()
        .await
        .expect("start");

    let mut writer = Peer::connected_as(&broker, "w").await;
    for body in ["one", "two"] {
        writer
            .send(
                frame(
                    Command::Send,
                    &[("destination", "/log/a"), ("receipt", body)],
                )
                .body(body),
            )
            .await;
    }
    let r1 = writer.expect(Command::Receipt).await;
    assert_eq!(
        (r1.get("receipt-id"), r1.get("x-seq")),
        (Some("one"), Some("1"))
    );
    let r2 = writer.expect(Command::Receipt).await;
    assert_eq!(
        (r2.get("receipt-id"), r2.get("x-seq")),
        (Some("two"), Some("2"))
    );

    // The replay comes before the SUBSCRIBE's RECEIPT, then live messages.
    let mut reader = Peer::connected_as(&broker, "r").await;
    reader
        .send(frame(
            Command::Subscribe,
            &[("id", "s"), ("destination", "/log/a"), ("receipt", "sub")],
        ))
        .await;
    let replayed: Vec<_> = [reader.frame().await, reader.frame().await]
        .iter()
        .map(|m| (m.command, m.get("message-id").map(str::to_owned)))
        .collect();
    assert_eq!(
        replayed,
        vec![
            (Command::Message, Some("log:1".to_owned())),
            (Command::Message, Some("log:2".to_owned()))
        ]
    );
    reader.expect(Command::Receipt).await;
    writer
        .request(frame(Command::Send, &[("destination", "/log/a")]).body("three"))
        .await;
    let live = reader.expect_message("three").await;
    assert_eq!(live.get("subscription"), Some("s"));
    assert_eq!(live.get("x-seq"), Some("3"));

    // A soft refusal keeps the connection.
    writer
        .send(
            frame(
                Command::Send,
                &[("destination", "/log/closed"), ("receipt", "c")],
            )
            .body("x"),
        )
        .await;
    let refused = writer.expect(Command::Receipt).await;
    assert_eq!(refused.get("x-error"), Some("the log is closed"));
    writer
        .request(frame(Command::Send, &[("destination", "/log/a")]).body("four"))
        .await;
    reader.expect_message("four").await;

    // UNSUBSCRIBE and disconnect both tell the plugin.
    reader
        .request(frame(Command::Unsubscribe, &[("id", "s")]))
        .await;
    let mut other = Peer::connected_as(&broker, "o").await;
    other.subscribe("t", "/log/a", "auto").await;
    drop(other);
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while log.state.lock().unwrap().unsubscribed < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "unsubscribes not seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(log.state.lock().unwrap().subscribers.is_empty());
}

/// Reports one gauge.
struct Counted;

impl Plugin for Counted {
    fn name(&self) -> &str {
        "counted"
    }

    fn metrics(&self) -> Vec<stompede::plugin::Gauge> {
        vec![stompede::plugin::Gauge {
            name: "counted_things",
            help: "Things the test plugin counts.",
            value: 42,
        }]
    }
}

#[tokio::test]
async fn plugin_gauges_appear_in_the_metrics() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = "127.0.0.1:0".into();
    let broker = Broker::builder()
        .config(config)
        .store_in_memory()
        .plugin(Counted)
        .build()
        .start()
        .await
        .expect("start");
    let mut s = tokio::net::TcpStream::connect(broker.admin_addr().expect("admin"))
        .await
        .expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).await.expect("read");
    assert!(
        text.contains("# TYPE stompede_counted_things gauge"),
        "{text}"
    );
    assert!(text.contains("\nstompede_counted_things 42\n"), "{text}");
}
