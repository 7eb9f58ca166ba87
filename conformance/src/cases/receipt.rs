//! Spec sections "Header receipt", "RECEIPT" and "DISCONNECT".

use anyhow::{Context as _, Result};
use stompede_codec::Command;

use super::{body, case, ensure, Case, Ctx};
use crate::client::{describe, frame};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "receipt/every-client-frame",
            Core,
            "SUBSCRIBE, SEND, BEGIN, COMMIT, ABORT, ACK, NACK, UNSUBSCRIBE with receipt each get RECEIPT receipt-id",
            every_client_frame
        ),
        case!(
            "receipt/pipelined",
            Core,
            "five frames with receipts in one write get five matching RECEIPTs",
            pipelined
        ),
        case!(
            "receipt/escaped-receipt-id",
            Core,
            "a receipt value with escapes comes back as the same value in receipt-id (1.2)",
            escaped_receipt_id
        ),
        case!(
            "receipt/disconnect",
            Core,
            "DISCONNECT with receipt gets RECEIPT, then the server closes the connection",
            disconnect
        ),
        case!(
            "receipt/disconnect-after-send",
            Core,
            "a SEND followed by DISCONNECT with receipt is delivered once the RECEIPT arrives",
            disconnect_after_send
        ),
    ]
}

async fn every_client_frame(ctx: Ctx) -> Result<()> {
    let queue = ctx.queue("rcpt");
    let topic = ctx.topic("rcpt");
    let mut c = ctx.connect12().await?;
    let steps: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "SUBSCRIBE",
            vec![
                ("destination", &queue),
                ("id", "q"),
                ("ack", "client-individual"),
            ],
        ),
        ("SEND", vec![("destination", &queue)]),
        ("SEND", vec![("destination", &queue)]),
        ("BEGIN", vec![("transaction", "t1")]),
        ("BEGIN", vec![("transaction", "t2")]),
        ("ABORT", vec![("transaction", "t2")]),
    ];
    for (i, (command, headers)) in steps.iter().enumerate() {
        let id = format!("r-{i}-{}", command.to_lowercase());
        let mut all = headers.clone();
        all.push(("receipt", &id));
        c.send(frame(command, &all, "x")).await?;
        c.await_receipt(&id)
            .await
            .with_context(|| format!("{command} with receipt:{id}"))?;
    }
    // Whether a transactional SEND is acknowledged at once or at COMMIT is
    // the broker's choice: accept both receipts in either order.
    c.send(frame(
        "SEND",
        &[
            ("destination", &topic),
            ("transaction", "t1"),
            ("receipt", "r-txsend"),
        ],
        "x",
    ))
    .await?;
    c.send(frame(
        "COMMIT",
        &[("transaction", "t1"), ("receipt", "r-commit")],
        "",
    ))
    .await?;
    c.await_receipt("r-txsend")
        .await
        .context("SEND in a transaction")?;
    c.await_receipt("r-commit").await.context("COMMIT")?;
    let first = c.expect_message().await?;
    let second = c.expect_message().await?;
    for (command, m) in [("ACK", &first), ("NACK", &second)] {
        let id = format!("r-{}", command.to_lowercase());
        let owned = c.ack_headers(m)?;
        let mut all: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        all.push(("receipt", &id));
        c.send(frame(command, &all, "")).await?;
        c.await_receipt(&id)
            .await
            .with_context(|| format!("{command} with receipt:{id}"))?;
    }
    c.send(frame(
        "UNSUBSCRIBE",
        &[("id", "q"), ("receipt", "r-unsub")],
        "",
    ))
    .await?;
    c.await_receipt("r-unsub").await.context("UNSUBSCRIBE")?;
    c.disconnect().await
}

async fn pipelined(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("pipe");
    let mut c = ctx.connect12().await?;
    let mut raw = Vec::new();
    for i in 0..5 {
        raw.extend(frame(
            "SEND",
            &[("destination", &dest), ("receipt", &format!("p{i}"))],
            format!("{i}"),
        ));
    }
    c.send(&raw).await?;
    let mut got = Vec::new();
    for _ in 0..5 {
        let f = c.expect(Command::Receipt).await?;
        got.push(f.get("receipt-id").unwrap_or_default().to_owned());
    }
    got.sort();
    ensure!(got == ["p0", "p1", "p2", "p3", "p4"], "receipt-ids {got:?}");
    c.disconnect().await
}

async fn escaped_receipt_id(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    let dest = ctx.topic("rcptesc");
    c.send(frame(
        "SEND",
        &[("destination", &dest), ("receipt", r"a\cb\\c")],
        "",
    ))
    .await?;
    let r = c.expect(Command::Receipt).await?;
    ensure!(
        r.get("receipt-id") == Some("a:b\\c"),
        "receipt-id {:?}, expected \"a:b\\\\c\"",
        r.get("receipt-id")
    );
    c.disconnect().await
}

async fn disconnect(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    let id = ctx.unique("bye");
    c.send(frame("DISCONNECT", &[("receipt", &id)], "")).await?;
    let r = c.recv().await?;
    ensure!(
        r.command == Command::Receipt && r.get("receipt-id") == Some(id.as_str()),
        "expected RECEIPT receipt-id:{id}, got {}",
        describe(&r)
    );
    c.expect_close()
        .await
        .context("after the DISCONNECT receipt")
}

async fn disconnect_after_send(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("discsend");
    let mut sub = ctx.connect12().await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut c = ctx.connect12().await?;
    let mut raw = frame("SEND", &[("destination", &dest)], "last words");
    raw.extend(frame("DISCONNECT", &[("receipt", "bye")], ""));
    c.send(&raw).await?;
    c.expect_receipt("bye").await?;
    let m = sub.expect_message().await?;
    ensure!(body(&m) == "last words", "body {:?}", body(&m));
    sub.disconnect().await
}
