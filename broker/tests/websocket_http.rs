//! The WebSocket listener's HTTP front, spoken to in raw HTTP: error
//! statuses, the origin allow-list, the per-address connection limit.

mod common;

use common::{start_with, Peer, WAIT};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use stompede::config::Config;
use stompede::stats::Transport;
use stompede::BrokerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// The RFC 6455 example key and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// An HTTP response head.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response head, byte by byte (nothing after it is consumed).
async fn read_head(stream: &mut TcpStream) -> Head {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
            .await
            .expect("a response in time")
            .expect("read");
        assert_eq!(n, 1, "closed before a full response head: {raw:?}");
        raw.push(byte[0]);
    }
    let text = String::from_utf8(raw).expect("ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Head { status, headers }
}

/// Sends `request` and returns the response head and the stream.
async fn exchange(addr: std::net::SocketAddr, request: &str) -> (Head, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let head = read_head(&mut stream).await;
    (head, stream)
}

/// Expects the server to close `stream` (after any body).
async fn expect_closed(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the broker closes the connection")
        .expect("read");
}

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

async fn ws_broker(adjust: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    adjust(&mut config);
    start_with(config).await
}

#[tokio::test]
async fn requests_that_are_not_upgrades_get_http_errors() {
    let b = ws_broker(|_| {}).await;
    let addr = b.ws_addr().expect("ws listener");

    let (head, mut s) = exchange(addr, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head.status, 404);
    expect_closed(&mut s).await;

    let (head, mut s) = exchange(
        addr,
        "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), Some("GET"));
    expect_closed(&mut s).await;

    let (head, mut s) = exchange(addr, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head.status, 426);
    assert_eq!(head.header("upgrade"), Some("websocket"));
    expect_closed(&mut s).await;

    let bad_version = upgrade("/ws", "").replace("Version: 13", "Version: 8");
    let (head, mut s) = exchange(addr, &bad_version).await;
    assert_eq!(head.status, 426);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    expect_closed(&mut s).await;

    let no_key = upgrade("/ws", "").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
    let (head, _) = exchange(addr, &no_key).await;
    assert_eq!(head.status, 400);

    let bad_key = upgrade("/ws", "").replace(KEY, "not-base64");
    let (head, _) = exchange(addr, &bad_key).await;
    assert_eq!(head.status, 400);

    // An oversized request head is refused, not buffered.
    let huge = upgrade("/ws", &format!("X-Filler: {}\r\n", "a".repeat(20_000)));
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // Garbage is not HTTP.
    let (head, _) = exchange(addr, "CONNECT\naccept-version:1.2\n\n\0\r\n\r\n").await;
    assert_eq!(head.status, 400);

    // The listener still upgrades after all that.
    let (head, _) = exchange(addr, &upgrade("/ws", "")).await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-accept"), Some(ACCEPT));
    b.shutdown().await;
}

/// A masked client text frame (payload under 126 bytes).
fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

#[tokio::test]
async fn a_raw_upgrade_carries_stomp_even_when_frames_follow_without_waiting() {
    let b = ws_broker(|_| {}).await;
    let addr = b.ws_addr().expect("ws listener");
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // The request and the first WebSocket frame in one write.
    let mut bytes = upgrade("/ws", "Sec-WebSocket-Protocol: v11.stomp, v12.stomp\r\n").into_bytes();
    bytes.extend(client_text_frame(
        b"CONNECT\naccept-version:1.2\nhost:x\n\n\0",
    ));
    s.write_all(&bytes).await.expect("write");
    let head = read_head(&mut s).await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-protocol"), Some("v12.stomp"));
    assert_eq!(head.header("sec-websocket-accept"), Some(ACCEPT));
    let mut ws = WebSocketStream::from_raw_socket(s, Role::Client, None).await;
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        if let Message::Text(t) = m {
            assert!(t.as_str().starts_with("CONNECTED\n"), "{t}");
            break;
        }
    }
    ws.send(Message::text("DISCONNECT\nreceipt:bye\n\n\0"))
        .await
        .expect("send");
    b.shutdown().await;
}

#[tokio::test]
async fn origins_outside_the_allow_list_are_forbidden() {
    let b = ws_broker(|c| {
        c.websocket.allowed_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    let addr = b.ws_addr().expect("ws listener");
    let (head, mut s) = exchange(addr, &upgrade("/ws", "Origin: https://evil.example\r\n")).await;
    assert_eq!(head.status, 403);
    expect_closed(&mut s).await;
    let (head, _) = exchange(
        addr,
        &upgrade("/ws", "Origin: https://chat.example.com\r\n"),
    )
    .await;
    assert_eq!(head.status, 101);
    // Non-browser clients send no Origin.
    let (head, _) = exchange(addr, &upgrade("/ws", "")).await;
    assert_eq!(head.status, 101);
    b.shutdown().await;

    // An empty list allows any origin.
    let b = ws_broker(|_| {}).await;
    let addr = b.ws_addr().expect("ws listener");
    let (head, _) = exchange(addr, &upgrade("/ws", "Origin: https://evil.example\r\n")).await;
    assert_eq!(head.status, 101);
    b.shutdown().await;
}

#[tokio::test]
async fn a_stalled_http_request_is_closed_at_the_connect_timeout() {
    let b = ws_broker(|c| c.limits.connect_timeout_ms = 300).await;
    let addr = b.ws_addr().expect("ws listener");
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    expect_closed(&mut s).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    b.shutdown().await;
}

#[tokio::test]
async fn the_per_address_limit_spans_listeners() {
    let b = ws_broker(|c| c.limits.max_connections_per_ip = 2).await;
    let ws_addr = b.ws_addr().expect("ws listener");
    let first = Peer::connected(&b).await;
    let (head, _second) = exchange(ws_addr, &upgrade("/ws", "")).await;
    assert_eq!(head.status, 101);

    // A third connection, over either listener, is refused.
    let mut third = Peer::tcp(&b).await;
    let e = third.expect_error_and_close().await;
    assert_eq!(
        e.get("message"),
        Some("too many connections from your address")
    );
    let (head, mut s) = exchange(ws_addr, &upgrade("/ws", "")).await;
    assert_eq!(head.status, 429);
    expect_closed(&mut s).await;
    assert_eq!(b.stats().connections_refused_on(Transport::Tcp), 1);
    assert_eq!(b.stats().connections_refused_on(Transport::Ws), 1);

    // A closed connection frees its place.
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut p = Peer::tcp(&b).await;
        p.send(common::frame(
            stompede::codec::Command::Connect,
            &[("accept-version", "1.2"), ("host", "x")],
        ))
        .await;
        let f = p.frame().await;
        if f.command == stompede::codec::Command::Connected {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "place never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn a_full_broker_answers_websocket_clients_503() {
    let b = ws_broker(|c| c.limits.max_connections = 1).await;
    let _only = Peer::connected(&b).await;
    let (head, mut s) = exchange(b.ws_addr().expect("ws"), &upgrade("/ws", "")).await;
    assert_eq!(head.status, 503);
    expect_closed(&mut s).await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_static_directory_is_served_beside_the_websocket_path() {
    let dir = std::env::temp_dir().join(format!("stompede-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("js")).expect("mkdir");
    std::fs::write(dir.join("index.html"), "<html>chat</html>").expect("write");
    std::fs::write(dir.join("js/app.js"), "console.log(1)").expect("write");
    let static_dir = dir.display().to_string();
    let broker = ws_broker(|c| c.websocket.static_dir = static_dir).await;
    let addr = broker.ws_addr().expect("ws");

    let (head, mut stream) = exchange(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let mut body = vec![0u8; 17];
    stream.read_exact(&mut body).await.expect("body");
    assert_eq!(&body, b"<html>chat</html>");

    let (head, _) = exchange(addr, "GET /js/app.js HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    for path in [
        "/../etc/passwd",
        "/missing.html",
        "/.hidden",
        "/js/%2e%2e/x",
    ] {
        let (head, _) = exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(head.status, 404, "{path}");
    }
    let (head, _) = exchange(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 405);
    // The WebSocket path still upgrades.
    let (head, _) = exchange(addr, &upgrade("/ws", "")).await;
    assert_eq!(head.status, 101);
    let _ = std::fs::remove_dir_all(&dir);
}
