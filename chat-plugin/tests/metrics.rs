//! The chat plugin's gauges in the broker's `/metrics`: rooms and users
//! online move as users connect and create rooms.

mod common;

use common::{config, unlimited, Peer};
use stompede::Broker;
use stompede_chat::ChatPlugin;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(broker: &stompede::BrokerHandle) -> String {
    let mut s = tokio::net::TcpStream::connect(broker.admin_addr().expect("admin"))
        .await
        .expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).await.expect("read");
    text
}

fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
}

#[tokio::test]
async fn rooms_and_online_users_are_gauges() {
    let mut cfg = config();
    cfg.listeners.admin = "127.0.0.1:0".into();
    let broker = Broker::builder()
        .config(cfg)
        .store_in_memory()
        .plugin(ChatPlugin::new(unlimited()))
        .build()
        .start()
        .await
        .expect("broker starts");

    let before = scrape(&broker).await;
    assert_eq!(gauge(&before, "stompede_chat_rooms"), 0);
    assert_eq!(gauge(&before, "stompede_chat_users_online"), 0);

    let mut alice = Peer::connect(&broker, "alice").await;
    let _alice_tab = Peer::connect(&broker, "alice").await;
    let _bob = Peer::connect(&broker, "bob").await;
    alice.create_group("lobby", "bob", false).await;

    let after = scrape(&broker).await;
    assert_eq!(gauge(&after, "stompede_chat_rooms"), 1);
    assert_eq!(gauge(&after, "stompede_chat_users_online"), 2);
    assert!(gauge(&after, "stompede_chat_rooms_running") <= 1);
}
