//! BEGIN / COMMIT / ABORT.

mod common;

use common::{frame, start, Peer};
use std::time::Duration;
use stompede::codec::Command;

const QUIET: Duration = Duration::from_millis(150);

#[tokio::test]
async fn sends_in_a_transaction_are_delivered_at_commit() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/tx", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.request(frame(Command::Begin, &[("transaction", "t1")]))
        .await;
    p.request(
        frame(
            Command::Send,
            &[("destination", "/topic/tx"), ("transaction", "t1")],
        )
        .body("a"),
    )
    .await;
    p.request(
        frame(
            Command::Send,
            &[("destination", "/topic/tx"), ("transaction", "t1")],
        )
        .body("b"),
    )
    .await;
    s.expect_silence(QUIET).await;
    p.request(frame(Command::Commit, &[("transaction", "t1")]))
        .await;
    s.expect_message("a").await;
    let b = s.expect_message("b").await;
    assert_eq!(b.get("transaction"), None);
}

#[tokio::test]
async fn abort_discards_the_transaction() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/abort", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.request(frame(Command::Begin, &[("transaction", "t")]))
        .await;
    p.request(frame(
        Command::Send,
        &[("destination", "/topic/abort"), ("transaction", "t")],
    ))
    .await;
    p.request(frame(Command::Abort, &[("transaction", "t")]))
        .await;
    s.expect_silence(QUIET).await;
    // The id is free again.
    p.request(frame(Command::Begin, &[("transaction", "t")]))
        .await;
}

#[tokio::test]
async fn disconnect_drops_an_open_transaction() {
    let broker = start().await;
    let mut s = Peer::connected(&broker).await;
    s.subscribe("1", "/topic/dropped", "auto").await;
    let mut p = Peer::connected(&broker).await;
    p.request(frame(Command::Begin, &[("transaction", "t")]))
        .await;
    p.request(frame(
        Command::Send,
        &[("destination", "/topic/dropped"), ("transaction", "t")],
    ))
    .await;
    p.raw(b"DISCONNECT\nreceipt:d\n\n\0").await;
    p.expect(Command::Receipt).await;
    s.expect_silence(QUIET).await;
}

#[tokio::test]
async fn acks_in_a_transaction_take_effect_at_commit() {
    let broker = start().await;
    let mut c = Peer::connected(&broker).await;
    c.subscribe("c", "/queue/txack", "client-individual").await;
    let mut p = Peer::connected(&broker).await;
    p.publish("/queue/txack", "m").await;
    let m = c.expect_message("m").await;
    let ack = m.get("ack").expect("ack").to_owned();
    c.request(frame(Command::Begin, &[("transaction", "t")]))
        .await;
    c.request(frame(Command::Ack, &[("id", &ack), ("transaction", "t")]))
        .await;
    c.request(frame(Command::Abort, &[("transaction", "t")]))
        .await;
    // Aborted: the message is still unacked and comes back after UNSUBSCRIBE.
    c.request(frame(Command::Unsubscribe, &[("id", "c")])).await;
    c.subscribe("c2", "/queue/txack", "client-individual").await;
    let again = c.expect_message("m").await;
    let ack = again.get("ack").expect("ack").to_owned();
    c.request(frame(Command::Begin, &[("transaction", "t2")]))
        .await;
    c.request(frame(Command::Ack, &[("id", &ack), ("transaction", "t2")]))
        .await;
    c.request(frame(Command::Commit, &[("transaction", "t2")]))
        .await;
    c.request(frame(Command::Unsubscribe, &[("id", "c2")]))
        .await;
    c.subscribe("c3", "/queue/txack", "auto").await;
    c.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unknown_transaction_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.raw(b"COMMIT\ntransaction:nope\nreceipt:c\n\n\0").await;
    let e = p.expect_error_and_close().await;
    assert_eq!(e.get("receipt-id"), Some("c"));

    let mut q = Peer::connected(&broker).await;
    q.raw(b"SEND\ndestination:/topic/a\ntransaction:nope\n\n\0")
        .await;
    q.expect_error_and_close().await;
}

#[tokio::test]
async fn duplicate_begin_is_an_error() {
    let broker = start().await;
    let mut p = Peer::connected(&broker).await;
    p.request(frame(Command::Begin, &[("transaction", "t")]))
        .await;
    p.raw(b"BEGIN\ntransaction:t\n\n\0").await;
    p.expect_error_and_close().await;
}
