//! Publish–subscribe on /topic/ destinations.

mod common;

use common::{frame, start, Peer};
use stompede::codec::Command;

#[tokio::test]
async fn a_message_reaches_every_subscriber_with_the_right_headers() {
    let broker = start().await;
    let mut a = Peer::connected(&broker).await;
    let mut b = Peer::connected(&broker).await;
    a.subscribe("sa", "/topic/news", "auto").await;
    b.subscribe("sb", "/topic/news", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.request(
        frame(
            Command::Send,
            &[
                ("destination", "/topic/news"),
                ("content-type", "text/plain"),
                ("x-custom", "kept"),
                ("message-id", "forged"),
            ],
        )
        .body("hi"),
    )
    .await;
    for (peer, sub) in [(&mut a, "sa"), (&mut b, "sb")] {
        let m = peer.expect_message("hi").await;
        assert_eq!(m.get("subscription"), Some(sub));
        assert_eq!(m.get("destination"), Some("/topic/news"));
        assert_eq!(m.get("content-type"), Some("text/plain"));
        assert_eq!(m.get("x-custom"), Some("kept"));
        assert_eq!(m.get("content-length"), Some("2"));
        let id = m.get("message-id").expect("message-id");
        assert_ne!(id, "forged");
        assert_eq!(
            m.headers.iter().filter(|(n, _)| *n == "message-id").count(),
            1
        );
    }
}

#[tokio::test]
async fn messages_from_one_publisher_arrive_in_order() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/order", "auto").await;
    let mut p = Peer::connected(&broker).await;
    for i in 0..500 {
        p.send(frame(Command::Send, &[("destination", "/topic/order")]).body(i.to_string()))
            .await;
    }
    for i in 0..500 {
        s.expect_message(&i.to_string()).await;
    }
}

#[tokio::test]
async fn star_and_hash_wildcards_match_segments() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("star", "/topic/stock.*.nyse", "auto").await;
    s.subscribe("hash", "/topic/stock.#", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/stock.ibm.nyse", "1").await;
    p.publish("/topic/stock.ibm.a.nyse", "2").await;
    p.publish("/topic/stock", "3").await;
    p.publish("/topic/other.ibm.nyse", "4").await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = s.expect(Command::Message).await;
        got.push((
            m.get("subscription").unwrap_or("").to_owned(),
            String::from_utf8_lossy(&m.body).into_owned(),
            m.get("destination").unwrap_or("").to_owned(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("hash".into(), "1".into(), "/topic/stock.ibm.nyse".into()),
            ("hash".into(), "2".into(), "/topic/stock.ibm.a.nyse".into()),
            ("hash".into(), "3".into(), "/topic/stock".into()),
            ("star".into(), "1".into(), "/topic/stock.ibm.nyse".into()),
        ]
    );
    s.expect_silence(std::time::Duration::from_millis(100))
        .await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/u", "auto").await;
    s.request(frame(Command::Unsubscribe, &[("id", "1")])).await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/topic/u", "gone").await;
    s.expect_silence(std::time::Duration::from_millis(150))
        .await;
}

#[tokio::test]
async fn subscribe_without_id_is_an_error_in_1_2_but_not_in_1_0() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SUBSCRIBE\ndestination:/topic/x\n\n\0").await;
    p.expect_error_and_close().await;

    let mut old = Peer::tcp(&broker).await;
    old.raw(b"CONNECT\n\n\0").await;
    old.expect(Command::Connected).await;
    old.raw(b"SUBSCRIBE\ndestination:/topic/old\nreceipt:s\n\n\0")
        .await;
    old.expect(Command::Receipt).await;
    let mut pubr = Peer::connected(&broker).await;
    pubr.publish("/topic/old", "for 1.0").await;
    let m = old.expect_message("for 1.0").await;
    assert_eq!(m.get("subscription"), Some("/topic/old"));
}

#[tokio::test]
async fn duplicate_subscription_id_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.subscribe("dup", "/topic/a", "auto").await;
    p.raw(b"SUBSCRIBE\nid:dup\ndestination:/topic/b\n\n\0")
        .await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn invalid_ack_mode_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SUBSCRIBE\nid:1\ndestination:/topic/a\nack:sometimes\n\n\0")
        .await;
    p.expect_error_and_close().await;
}

#[tokio::test]
async fn unknown_destination_prefix_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/exchange/x\n\nbody\0").await;
    let e = p.expect_error_and_close().await;
    assert!(e.get("message").is_some_and(|m| m.contains("/exchange/x")));
}

#[tokio::test]
async fn escaped_headers_and_binary_bodies_round_trip() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/esc", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/topic/esc\nweird:a\\nb\\cc\\\\d\\re\ncontent-length:5\nreceipt:x\n\n\x00\x01\x00\xff\x00\0")
        .await;
    p.expect(Command::Receipt).await;
    let m = s.expect(Command::Message).await;
    assert_eq!(m.get("weird"), Some("a\nb:c\\d\re"));
    assert_eq!(&m.body[..], b"\x00\x01\x00\xff\x00");
}

#[tokio::test]
async fn repeated_headers_keep_the_first_value() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/rep", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"SEND\ndestination:/topic/rep\nfoo:first\nfoo:second\nreceipt:x\n\n\0")
        .await;
    p.expect(Command::Receipt).await;
    let m = s.expect(Command::Message).await;
    assert_eq!(m.get("foo"), Some("first"));
}

#[tokio::test]
async fn a_1_0_subscriber_and_a_1_1_subscriber_get_their_own_encoding() {
    let broker = start().await;
    let mut v11 = Peer::tcp(&broker).await;
    v11.connect("1.1", None).await;
    v11.subscribe("1", "/topic/v", "auto").await;
    let mut v12 = Peer::connected(&broker).await;
    v12.publish_with_header("/topic/v", "k", "x:y").await;
    let m = v11.expect(Command::Message).await;
    assert_eq!(m.get("k"), Some("x:y"));
}
