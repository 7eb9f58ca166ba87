//! The offline-member hook end to end: the embedder's callback and the
//! webhook are told, per stored message, which members have no session.

mod common;

use common::Peer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stompede_chat::{ChatConfig, ChatPlugin, OfflineHook, OfflineMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

struct Recorder(mpsc::UnboundedSender<OfflineMessage>);

impl OfflineHook for Recorder {
    fn offline_message(&self, message: &OfflineMessage) {
        let _ = self.0.send(message.clone());
    }
}

#[tokio::test]
async fn the_callback_gets_the_members_without_a_session() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let plugin = ChatPlugin::new(common::unlimited()).with_offline_hook(Arc::new(Recorder(tx)));
    let broker = common::start_plugin(plugin).await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob,carol,dave", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    let mut carol = Peer::connect(&broker, "carol").await;
    carol.command("/room/r/join", &[]).await;
    drop(carol);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // bob has a session (even without a room subscription); carol has
    // none; dave is only invited; alice sent it.
    let posted = common::seq(&alice.post("r", "hi", "c1").await);
    let notice = tokio::time::timeout(common::WAIT, rx.recv())
        .await
        .expect("notice")
        .expect("open");
    assert_eq!(notice.users, ["carol"]);
    assert_eq!((notice.room.as_str(), notice.seq), ("r", posted));
    assert_eq!(
        (notice.sender.as_str(), &notice.body[..]),
        ("alice", &b"hi"[..])
    );
    assert_eq!(notice.content_type.as_deref(), Some("text/plain"));

    // Edits and membership events are not messages.
    alice
        .command("/room/r/edit", &[("x-relates-to", &posted.to_string())])
        .await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice.post("r", "again", "c2").await;
    let notice = tokio::time::timeout(common::WAIT, rx.recv())
        .await
        .expect("notice")
        .expect("open");
    assert_eq!(notice.users, ["bob", "carol"]);
    assert_eq!(notice.seq, posted + 2);
}

/// A one-shot HTTP server: the bodies of the POSTs it gets.
async fn http_sink() -> (String, mpsc::UnboundedReceiver<(String, Vec<u8>)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/push", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    let got = Arc::new(Mutex::new(tx));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let got = Arc::clone(&got);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head, body) = loop {
                    let n = stream.read(&mut chunk).await.expect("read");
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..at]).into_owned();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.trim().parse().ok())
                            .expect("content-length");
                        while buf.len() < at + 4 + len {
                            let n = stream.read(&mut chunk).await.expect("read");
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        break (head, buf[at + 4..at + 4 + len].to_vec());
                    }
                };
                stream
                    .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                    .await
                    .expect("write");
                let _ = got.lock().expect("lock").send((head, body));
            });
        }
    });
    (url, rx)
}

#[tokio::test]
async fn the_webhook_posts_a_small_json_document() {
    let (url, mut posts) = http_sink().await;
    let broker = common::start_with(ChatConfig {
        webhook_url: url,
        ..common::unlimited()
    })
    .await;
    let mut alice = Peer::connect(&broker, "alice").await;
    alice.create_group("r", "bob", false).await;
    let mut bob = Peer::connect(&broker, "bob").await;
    bob.command("/room/r/join", &[]).await;
    drop(bob);
    tokio::time::sleep(Duration::from_millis(100)).await;
    alice.post("r", "secret text", "c1").await;
    let (head, body) = tokio::time::timeout(common::WAIT, posts.recv())
        .await
        .expect("a POST")
        .expect("open");
    assert!(head.starts_with("POST /push HTTP/1.1"), "{head}");
    assert!(head.contains("Content-Type: application/json"));
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(doc["event"], "offline-message");
    assert_eq!(doc["room"], "r");
    assert_eq!(doc["sender"], "alice");
    assert_eq!(doc["users"], serde_json::json!(["bob"]));
    assert!(!String::from_utf8_lossy(&body).contains("secret"));

    // A bad URL stops the broker from starting.
    let bad = stompede::Broker::builder()
        .config(common::config())
        .store_in_memory()
        .plugin(ChatPlugin::new(ChatConfig {
            webhook_url: "https://push.example/".into(),
            ..ChatConfig::default()
        }))
        .build()
        .start()
        .await;
    assert!(bad.is_err());
}
