//! Connecting, version negotiation, receipts, errors and disconnects, over
//! real TCP with raw STOMP bytes.

mod common;

use common::{frame, start, Peer};
use stompede::codec::Command;

#[tokio::test]
async fn connect_without_accept_version_speaks_1_0() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    p.raw(b"CONNECT\nlogin:a\npasscode:b\n\n\0").await;
    let c = p.expect(Command::Connected).await;
    assert_eq!(c.get("version"), Some("1.0"));
}

#[tokio::test]
async fn connect_negotiates_the_highest_common_version() {
    let broker = start().await;
    for (accept, expected) in [
        ("1.0,1.1,1.2", "1.2"),
        ("1.1", "1.1"),
        ("1.0,1.1", "1.1"),
        ("1.2,3.0", "1.2"),
    ] {
        let mut p = Peer::tcp(&broker).await;
        let c = p.connect(accept, None).await;
        assert_eq!(c.get("version"), Some(expected), "accept-version {accept}");
        assert!(c.get("server").is_some_and(|s| s.starts_with("stompede/")));
        assert!(c.get("session").is_some());
        assert_eq!(c.get("heart-beat"), Some("1000,10000"));
    }
}

#[tokio::test]
async fn stomp_frame_connects_like_connect() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    p.raw(b"STOMP\naccept-version:1.2\nhost:localhost\n\n\0")
        .await;
    assert_eq!(
        p.expect(Command::Connected).await.get("version"),
        Some("1.2")
    );
}

#[tokio::test]
async fn unsupported_version_gets_error_and_close() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    p.raw(b"CONNECT\naccept-version:2.0\nhost:x\n\n\0").await;
    let e = p.expect_error_and_close().await;
    assert!(e.get("message").is_some_and(|m| m.contains("version")));
    assert!(!e.body.is_empty());
}

#[tokio::test]
async fn frames_before_connect_get_error_and_close() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    p.raw(b"SEND\ndestination:/topic/a\nreceipt:77\n\nx\0")
        .await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("77"));
}

#[tokio::test]
async fn every_frame_with_receipt_gets_its_receipt() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    for f in [
        frame(
            Command::Subscribe,
            &[("id", "1"), ("destination", "/topic/r"), ("receipt", "a")],
        ),
        frame(
            Command::Send,
            &[("destination", "/topic/none"), ("receipt", "b")],
        ),
        frame(Command::Begin, &[("transaction", "t"), ("receipt", "c")]),
        frame(Command::Abort, &[("transaction", "t"), ("receipt", "d")]),
        frame(Command::Unsubscribe, &[("id", "1"), ("receipt", "e")]),
    ] {
        let want = f.get("receipt").map(str::to_owned);
        p.send(f).await;
        let r = p.expect(Command::Receipt).await;
        assert_eq!(r.get("receipt-id"), want.as_deref());
    }
}

#[tokio::test]
async fn disconnect_sends_receipt_then_closes() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"DISCONNECT\nreceipt:bye\n\n\0").await;
    assert_eq!(
        p.expect(Command::Receipt).await.get("receipt-id"),
        Some("bye")
    );
    p.expect_closed().await;
}

#[tokio::test]
async fn unknown_command_gets_error_and_close() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"PUBLISH\ndestination:/topic/a\n\n\0").await;
    let e = p.expect_error_and_close().await;
    assert!(e.get("message").is_some_and(|m| m.contains("PUBLISH")));
}

#[tokio::test]
async fn server_frames_from_a_client_are_refused() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"MESSAGE\ndestination:/topic/a\nreceipt:9\n\n\0")
        .await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("9"));
}

#[tokio::test]
async fn send_without_destination_is_an_error_with_receipt_id() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\nreceipt:42\n\nbody\0").await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("42"));
    assert!(e.get("message").is_some_and(|m| m.contains("destination")));
}

#[tokio::test]
async fn second_connect_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0").await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn undefined_escape_in_1_2_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/topic/a\nbad:x\\ty\n\n\0").await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn content_length_without_nul_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/topic/a\ncontent-length:2\n\nabc\0")
        .await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn invalid_heart_beat_header_is_an_error() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    p.raw(b"CONNECT\naccept-version:1.2\nhost:x\nheart-beat:soon\n\n\0")
        .await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn login_header_becomes_the_user_name() {
    let broker = start().await;
    let mut p = Peer::tcp(&broker).await;
    let c = p.connect("1.2", Some("alice")).await;
    assert_eq!(c.get("user-name"), Some("alice"));
}

#[tokio::test]
async fn frames_split_byte_by_byte_and_packed_together_are_handled() {
    let broker = start().await;
    let mut sub = Peer::connected(&broker).await;
    sub.subscribe("s", "/topic/split", "auto").await;
    let mut p = Peer::tcp(&broker).await;
    let connect = b"CONNECT\r\naccept-version:1.2\r\nhost:x\r\n\r\n\0";
    for b in connect.iter() {
        p.raw(&[*b]).await;
    }
    p.expect(Command::Connected).await;
    p.raw(b"SEND\ndestination:/topic/split\n\none\0\n\nSEND\ndestination:/topic/split\ncontent-length:3\n\nt\0o\0SEND\ndestination:/topic/split\nreceipt:z\n\nthree\0")
        .await;
    p.expect(Command::Receipt).await;
    sub.expect_message("one").await;
    let two = sub.expect(Command::Message).await;
    assert_eq!(&two.body[..], b"t\0o");
    sub.expect_message("three").await;
}
