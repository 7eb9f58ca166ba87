//! STOMP over WebSocket: subprotocols, message framing, text and binary.

mod common;

use common::{start, start_with, Peer};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use stompede::codec::Command;
use stompede::config::Config;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ws_connect(
    broker: &stompede::BrokerHandle,
    path: &str,
    protocols: Option<&str>,
) -> Result<(Ws, Option<String>), tokio_tungstenite::tungstenite::Error> {
    let addr = broker.ws_addr().expect("ws listener");
    let mut request = format!("ws://{addr}{path}").into_client_request()?;
    if let Some(p) = protocols {
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_str(p).expect("header"),
        );
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await?;
    let chosen = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, chosen))
}

async fn next_message(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("no error");
        match m {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

async fn connect_stomp(ws: &mut Ws) {
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:x\n\n\0"))
        .await
        .expect("send");
    let m = next_message(ws).await;
    assert!(
        m.to_text()
            .expect("text")
            .starts_with("CONNECTED\nversion:1.2\n"),
        "{m:?}"
    );
}

/// A WebSocket connection that offered v12.stomp and is CONNECTed.
async fn connected_ws(broker: &stompede::BrokerHandle) -> Ws {
    let (mut ws, _) = ws_connect(broker, "/ws", Some("v12.stomp"))
        .await
        .expect("ws");
    connect_stomp(&mut ws).await;
    ws
}

/// SUBSCRIBE with a receipt, waiting for it.
async fn ws_subscribe(ws: &mut Ws, id: &str, destination: &str) {
    let frame = format!("SUBSCRIBE\nid:{id}\ndestination:{destination}\nreceipt:s\n\n\0");
    ws.send(Message::text(frame)).await.expect("send");
    let receipt = next_message(ws).await;
    assert!(
        receipt.to_text().expect("text").starts_with("RECEIPT\n"),
        "{receipt:?}"
    );
}

#[tokio::test]
async fn the_highest_offered_subprotocol_is_chosen() {
    let broker = start().await;
    let (_, chosen) = ws_connect(&broker, "/ws", Some("v10.stomp, v11.stomp, v12.stomp"))
        .await
        .expect("ws");
    assert_eq!(chosen.as_deref(), Some("v12.stomp"));
    let (_, chosen) = ws_connect(&broker, "/ws", Some("v11.stomp, v10.stomp"))
        .await
        .expect("ws");
    assert_eq!(chosen.as_deref(), Some("v11.stomp"));
    let (mut ws, chosen) = ws_connect(&broker, "/ws", None).await.expect("ws");
    assert_eq!(chosen, None);
    connect_stomp(&mut ws).await;
}

#[tokio::test]
async fn clients_without_a_subprotocol_are_refused_when_configured() {
    let mut config = Config::default();
    config.websocket.require_subprotocol = true;
    let broker = start_with(config).await;
    assert!(ws_connect(&broker, "/ws", None).await.is_err());
    assert!(ws_connect(&broker, "/ws", Some("v12.stomp")).await.is_ok());
}

#[tokio::test]
async fn other_paths_get_404() {
    let broker = start().await;
    match ws_connect(&broker, "/elsewhere", Some("v12.stomp")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected HTTP 404, got {other:?}"),
    }
}

#[tokio::test]
async fn frames_may_span_messages_and_messages_may_hold_frames_and_each_frame_goes_out_alone() {
    let broker = start().await;
    let (mut ws, _) = ws_connect(&broker, "/ws", Some("v12.stomp"))
        .await
        .expect("ws");
    connect_stomp(&mut ws).await;
    ws.send(Message::text("SUBSCRIBE\nid:0\ndestination:/topic/ws\n"))
        .await
        .expect("send");
    ws.send(Message::binary(&b"receipt:s\n\n\0"[..]))
        .await
        .expect("send");
    assert_eq!(
        next_message(&mut ws).await.to_text().expect("text"),
        "RECEIPT\nreceipt-id:s\n\n\0"
    );
    ws.send(Message::text(
        "SEND\ndestination:/topic/ws\n\none\0SEND\ndestination:/topic/ws\n\ntwo\0",
    ))
    .await
    .expect("send");
    for body in ["one", "two"] {
        let m = next_message(&mut ws).await;
        let text = m.to_text().expect("text message");
        assert!(text.starts_with("MESSAGE\n"), "{text}");
        assert!(
            text.ends_with(&format!("\n\n{body}\0")),
            "one frame per message: {text:?}"
        );
    }
}

#[tokio::test]
async fn non_utf8_bodies_go_out_as_binary_messages() {
    let broker = start().await;
    let mut ws = connected_ws(&broker).await;
    ws_subscribe(&mut ws, "0", "/topic/bin").await;
    let mut tcp = Peer::connected(&broker).await;
    tcp.raw(b"SEND\ndestination:/topic/bin\ncontent-length:3\nreceipt:x\n\n\xff\x00\xfe\0")
        .await;
    tcp.expect(Command::Receipt).await;
    match next_message(&mut ws).await {
        Message::Binary(b) => assert!(b.ends_with(b"\n\n\xff\x00\xfe\0")),
        other => panic!("expected binary, got {other:?}"),
    }
}

#[tokio::test]
async fn binary_output_can_be_forced() {
    let mut config = Config::default();
    config.websocket.binary_frames = true;
    let broker = start_with(config).await;
    let (mut ws, _) = ws_connect(&broker, "/ws", Some("v12.stomp"))
        .await
        .expect("ws");
    ws.send(Message::text("CONNECT\naccept-version:1.2\nhost:x\n\n\0"))
        .await
        .expect("send");
    assert!(matches!(next_message(&mut ws).await, Message::Binary(_)));
}

#[tokio::test]
async fn pings_are_answered() {
    let broker = start().await;
    let (mut ws, _) = ws_connect(&broker, "/ws", Some("v12.stomp"))
        .await
        .expect("ws");
    ws.send(Message::Ping(b"hi"[..].into()))
        .await
        .expect("ping");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(p))) => return p,
                Some(Ok(_)) => continue,
                other => panic!("no pong: {other:?}"),
            }
        }
    })
    .await
    .expect("pong in time");
    assert_eq!(&pong[..], b"hi");
}

#[tokio::test]
async fn websocket_and_tcp_clients_talk_to_each_other() {
    let broker = start().await;
    let mut ws = connected_ws(&broker).await;
    ws_subscribe(&mut ws, "w", "/queue/mixed").await;
    let mut tcp = Peer::connected(&broker).await;
    tcp.publish("/queue/mixed", "from tcp").await;
    let m = next_message(&mut ws).await;
    assert!(m.to_text().expect("text").ends_with("\n\nfrom tcp\0"));
    tcp.subscribe("t", "/topic/back", "auto").await;
    ws.send(Message::text("SEND\ndestination:/topic/back\n\nfrom ws\0"))
        .await
        .expect("send");
    tcp.expect_message("from ws").await;
}

#[tokio::test]
async fn a_message_over_the_size_limit_gets_an_error_then_close() {
    let mut config = Config::default();
    config.websocket.max_message_bytes = 1000;
    let broker = start_with(config).await;
    let (mut ws, _) = ws_connect(&broker, "/ws", Some("v12.stomp"))
        .await
        .expect("handshake");
    connect_stomp(&mut ws).await;
    let big = format!("SEND\ndestination:/topic/x\n\n{}\0", "x".repeat(2000));
    ws.send(Message::text(big)).await.expect("send");
    let error = next_message(&mut ws).await;
    let text = error.to_text().expect("text");
    assert!(text.starts_with("ERROR\n"), "{text}");
    assert!(text.contains("message:message too large"), "{text}");
    // Then the connection ends.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("closed in time");
    assert!(
        matches!(end, None | Some(Err(_)) | Some(Ok(Message::Close(_)))),
        "{end:?}"
    );
}
