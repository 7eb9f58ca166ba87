//! Spec sections "BEGIN", "COMMIT" and "ABORT".
//!
//! Transactional SENDs are written without a receipt: whether their RECEIPT
//! comes at once or at COMMIT is left open by the spec (RabbitMQ sends it
//! at COMMIT), so the cases synchronise on the receipt of COMMIT/ABORT.

use anyhow::{Context as _, Result};

use super::{bodies, body, case, ensure, Case, Ctx};
use crate::client::Conn;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "tx/send-deferred-until-commit",
            Core,
            "a SEND in a transaction is not delivered before COMMIT, and is after it",
            send_deferred
        ),
        case!(
            "tx/abort-discards",
            Core,
            "ABORT discards the transaction's SENDs",
            abort_discards
        ),
        case!(
            "tx/disconnect-aborts",
            Core,
            "a transaction still open at DISCONNECT is aborted",
            disconnect_aborts
        ),
        case!(
            "tx/ack-on-commit",
            Core,
            "an ACK in a committed transaction consumes the message",
            ack_on_commit
        ),
        case!(
            "tx/ack-aborted",
            Core,
            "an ACK in an aborted transaction is void: the message comes back",
            ack_aborted
        ),
        case!(
            "tx/two-transactions",
            Core,
            "two transactions on one connection are independent",
            two_transactions
        ),
        case!(
            "tx/send-unknown-transaction",
            Core,
            "SEND naming a transaction never begun gets ERROR",
            send_unknown
        ),
        case!(
            "tx/commit-unknown-transaction",
            Core,
            "COMMIT of a transaction never begun gets ERROR",
            commit_unknown
        ),
        case!(
            "tx/duplicate-begin",
            Core,
            "BEGIN of a transaction id already active gets ERROR",
            duplicate_begin
        ),
        case!(
            "tx/begin-without-transaction",
            Core,
            "BEGIN without a transaction header gets ERROR",
            begin_without_header
        ),
    ]
}

/// A subscriber on a fresh queue, and a client that has begun transaction
/// `t1` and sent `body` to that queue inside it.
async fn sent_in_transaction(ctx: &Ctx, name: &str, body: &str) -> Result<(String, Conn, Conn)> {
    let dest = ctx.queue(name);
    let mut sub = ctx.connect12().await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut c = ctx.connect12().await?;
    c.request("BEGIN", &[("transaction", "t1")], "").await?;
    c.send_frame(
        "SEND",
        &[("destination", &dest), ("transaction", "t1")],
        body,
    )
    .await?;
    Ok((dest, sub, c))
}

async fn send_deferred(ctx: Ctx) -> Result<()> {
    let (_, mut sub, mut c) = sent_in_transaction(&ctx, "txsend", "in tx").await?;
    sub.expect_silence(ctx.quiet())
        .await
        .context("before COMMIT")?;
    c.request("COMMIT", &[("transaction", "t1")], "").await?;
    let m = sub.expect_message().await.context("after COMMIT")?;
    ensure!(body(&m) == "in tx", "body {:?}", body(&m));
    c.disconnect().await?;
    sub.disconnect().await
}

async fn abort_discards(ctx: Ctx) -> Result<()> {
    let (dest, mut sub, mut c) = sent_in_transaction(&ctx, "txabort", "aborted").await?;
    c.request("ABORT", &[("transaction", "t1")], "").await?;
    c.publish(&dest, "plain").await?;
    let m = sub.expect_message().await?;
    ensure!(
        body(&m) == "plain",
        "expected only the non-transactional message, got {:?}",
        body(&m)
    );
    sub.expect_silence(ctx.quiet()).await?;
    c.disconnect().await?;
    sub.disconnect().await
}

async fn disconnect_aborts(ctx: Ctx) -> Result<()> {
    let (_, mut sub, c) = sent_in_transaction(&ctx, "txdisc", "never").await?;
    c.disconnect().await?;
    sub.expect_silence(ctx.quiet()).await?;
    sub.disconnect().await
}

/// Receives one client-individual message, ACKs it inside a transaction
/// that is then committed or aborted, disconnects, and returns what a new
/// consumer of the queue gets.
async fn ack_in_tx(ctx: &Ctx, end: &str) -> Result<Vec<String>> {
    let dest = ctx.queue("txack");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "client-individual").await?;
    c.publish(&dest, "acked in tx").await?;
    let m = c.expect_message().await?;
    c.request("BEGIN", &[("transaction", "t1")], "").await?;
    c.ack("ACK", &m, &[("transaction", "t1")]).await?;
    c.request(end, &[("transaction", "t1")], "").await?;
    c.disconnect().await?;
    let mut again = ctx.connect12().await?;
    again.subscribe(&dest, "s2", "auto").await?;
    let mut got = Vec::new();
    while let Ok(m) = again.recv_within(ctx.quiet()).await {
        got.push(m);
    }
    again.disconnect().await?;
    Ok(bodies(&got))
}

async fn ack_on_commit(ctx: Ctx) -> Result<()> {
    let again = ack_in_tx(&ctx, "COMMIT").await?;
    ensure!(
        again.is_empty(),
        "a message ACKed in a committed transaction came back: {again:?}"
    );
    Ok(())
}

async fn ack_aborted(ctx: Ctx) -> Result<()> {
    let again = ack_in_tx(&ctx, "ABORT").await?;
    ensure!(
        again == ["acked in tx"],
        "the ACK of an aborted transaction must not count; expected the message back, got {again:?}"
    );
    Ok(())
}

async fn two_transactions(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("txtwo");
    let mut sub = ctx.connect12().await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut c = ctx.connect12().await?;
    c.request("BEGIN", &[("transaction", "ta")], "").await?;
    c.request("BEGIN", &[("transaction", "tb")], "").await?;
    c.send_frame(
        "SEND",
        &[("destination", &dest), ("transaction", "ta")],
        "from a",
    )
    .await?;
    c.send_frame(
        "SEND",
        &[("destination", &dest), ("transaction", "tb")],
        "from b",
    )
    .await?;
    c.request("ABORT", &[("transaction", "ta")], "").await?;
    c.request("COMMIT", &[("transaction", "tb")], "").await?;
    let m = sub.expect_message().await?;
    ensure!(
        body(&m) == "from b",
        "expected only tb's message, got {:?}",
        body(&m)
    );
    sub.expect_silence(ctx.quiet()).await?;
    c.disconnect().await?;
    sub.disconnect().await
}

async fn send_unknown(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    let dest = ctx.queue("txunknown");
    c.send_frame(
        "SEND",
        &[("destination", &dest), ("transaction", "never-begun")],
        "x",
    )
    .await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn commit_unknown(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.send_frame("COMMIT", &[("transaction", "never-begun")], "")
        .await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn duplicate_begin(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.request("BEGIN", &[("transaction", "t1")], "").await?;
    c.send_frame("BEGIN", &[("transaction", "t1")], "").await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn begin_without_header(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.send_frame("BEGIN", &[], "").await?;
    c.expect_error_and_close().await?;
    Ok(())
}
