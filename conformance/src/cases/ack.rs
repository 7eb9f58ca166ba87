//! Spec sections "SUBSCRIBE ack Header", "ACK" and "NACK".

use anyhow::{Context as _, Result};
use stompede_codec::{Frame, Version};

use super::{bodies, body, case, ensure, Case, Ctx};
use crate::client::{describe, Conn};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "ack/auto",
            Core,
            "ack:auto messages count as consumed on delivery: nothing comes back after a disconnect",
            auto
        ),
        case!(
            "ack/client-unacked-redelivered",
            Core,
            "ack:client messages never ACKed go to another consumer once the first disconnects",
            client_unacked_redelivered
        ),
        case!(
            "ack/client-cumulative",
            Core,
            "ack:client: ACK of the 2nd of 3 messages acknowledges the 1st too; only the 3rd comes back",
            client_cumulative
        ),
        case!(
            "ack/client-individual",
            Core,
            "ack:client-individual: ACK of the 2nd of 3 acknowledges only it; the 1st and 3rd come back",
            client_individual
        ),
        case!(
            "ack/ack-header-1.2",
            Core,
            "1.2: MESSAGE of a client-ack subscription has an ack header; ACK id:<ack> is accepted and consumes it",
            ack_header_12
        ),
        case!(
            "ack/ack-1.1-message-id-subscription",
            Core,
            "1.1: ACK with message-id and subscription is accepted and consumes the message",
            ack_11
        ),
        case!(
            "ack/ack-1.0-message-id",
            Core,
            "1.0: ACK with message-id is accepted and consumes the message",
            ack_10
        ),
        case!(
            "ack/ack-missing-id-1.2",
            Core,
            "1.2: ACK without id gets ERROR",
            ack_missing_id
        ),
        case!(
            "ack/nack-accepted",
            Core,
            "NACK id:<ack> is accepted (RECEIPT, no ERROR)",
            nack_accepted
        ),
        case!(
            "ack/nack-1.1",
            Core,
            "1.1: NACK with message-id and subscription is accepted (RECEIPT, no ERROR)",
            nack_11
        ),
        case!(
            "ext/redelivered-header",
            Extension,
            "a redelivered unacked message carries redelivered:true",
            redelivered_header
        ),
        case!(
            "ext/nack-redelivers",
            Extension,
            "a NACKed message is delivered again",
            nack_redelivers
        ),
    ]
}

/// Publishes `n` messages `m0..` to a fresh queue, has a `version`
/// consumer with `ack_mode` receive them all, ACK the ones at positions
/// `acks` (in delivery order) and disconnect; then a new consumer drains
/// the queue. Returns (first consumer's bodies in delivery order, second
/// consumer's frames).
async fn consume_then_redeliver(
    ctx: &Ctx,
    version: Version,
    ack_mode: &str,
    n: usize,
    acks: &[usize],
) -> Result<(Vec<String>, Vec<Frame>)> {
    let dest = ctx.queue("ack");
    let mut first = ctx.connect(version).await?;
    first.subscribe(&dest, "s1", ack_mode).await?;
    let mut sender = ctx.connect12().await?;
    for i in 0..n {
        sender.publish(&dest, &format!("m{i}")).await?;
    }
    sender.disconnect().await?;
    let msgs = first.expect_messages(n).await.context("first consumer")?;
    for &i in acks {
        first
            .ack("ACK", &msgs[i], &[])
            .await
            .with_context(|| format!("ACK of {}", describe(&msgs[i])))?;
    }
    first.disconnect().await?;
    let order: Vec<String> = msgs.iter().map(body).collect();
    let second = drain(ctx, &dest).await?;
    Ok((order, second))
}

/// Subscribes a fresh 1.2 consumer (ack:auto) to `dest` and collects what
/// arrives until the quiet period passes.
async fn drain(ctx: &Ctx, dest: &str) -> Result<Vec<Frame>> {
    let mut c = ctx.connect12().await?;
    c.subscribe(dest, "s2", "auto").await?;
    let mut got = Vec::new();
    while let Ok(m) = c.recv_within(ctx.quiet()).await {
        got.push(m);
    }
    c.disconnect().await?;
    Ok(got)
}

async fn auto(ctx: Ctx) -> Result<()> {
    let (_, again) = consume_then_redeliver(&ctx, Version::V1_2, "auto", 2, &[]).await?;
    ensure!(
        again.is_empty(),
        "ack:auto messages were delivered again: {:?}",
        bodies(&again)
    );
    Ok(())
}

async fn client_unacked_redelivered(ctx: Ctx) -> Result<()> {
    let (order, again) = consume_then_redeliver(&ctx, Version::V1_2, "client", 1, &[]).await?;
    ensure!(
        bodies(&again) == order,
        "expected the unacked {order:?} to be redelivered, got {:?}",
        bodies(&again)
    );
    Ok(())
}

async fn client_cumulative(ctx: Ctx) -> Result<()> {
    let (order, again) = consume_then_redeliver(&ctx, Version::V1_2, "client", 3, &[1]).await?;
    let want = vec![order[2].clone()];
    ensure!(
        bodies(&again) == want,
        "after a cumulative ACK of {:?} only {want:?} should come back, got {:?}",
        order[1],
        bodies(&again)
    );
    Ok(())
}

async fn client_individual(ctx: Ctx) -> Result<()> {
    let (order, again) =
        consume_then_redeliver(&ctx, Version::V1_2, "client-individual", 3, &[1]).await?;
    let mut want = vec![order[0].clone(), order[2].clone()];
    want.sort();
    ensure!(
        bodies(&again) == want,
        "after ACK of only {:?}, {want:?} should come back, got {:?}",
        order[1],
        bodies(&again)
    );
    Ok(())
}

async fn acked_one(ctx: &Ctx, version: Version, mode: &str) -> Result<()> {
    let (_, again) = consume_then_redeliver(ctx, version, mode, 1, &[0]).await?;
    ensure!(
        again.is_empty(),
        "an ACKed message was delivered again: {:?}",
        bodies(&again)
    );
    Ok(())
}

async fn ack_header_12(ctx: Ctx) -> Result<()> {
    // First check that the header is there at all, for a clear failure.
    let dest = ctx.queue("ackhdr");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "client-individual").await?;
    c.publish(&dest, "x").await?;
    let m = c.expect_message().await?;
    ensure!(
        m.get("ack").is_some_and(|a| !a.is_empty()),
        "1.2 MESSAGE for a client-individual subscription has no ack header: {}",
        describe(&m)
    );
    c.ack("ACK", &m, &[]).await?;
    c.disconnect().await?;
    acked_one(&ctx, Version::V1_2, "client").await
}

async fn ack_11(ctx: Ctx) -> Result<()> {
    acked_one(&ctx, Version::V1_1, "client").await
}

async fn ack_10(ctx: Ctx) -> Result<()> {
    acked_one(&ctx, Version::V1_0, "client").await
}

async fn ack_missing_id(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("acknoid");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "client").await?;
    c.publish(&dest, "x").await?;
    let m = c.expect_message().await?;
    let mid = m.get("message-id").unwrap_or_default().to_owned();
    c.send_frame("ACK", &[("message-id", &mid), ("subscription", "s")], "")
        .await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn received_one(ctx: &Ctx, dest: &str) -> Result<(Conn, Frame)> {
    received_one_v(ctx, dest, Version::V1_2).await
}

async fn received_one_v(ctx: &Ctx, dest: &str, version: Version) -> Result<(Conn, Frame)> {
    let mut c = ctx.connect(version).await?;
    c.subscribe(dest, "s", "client-individual").await?;
    c.publish(dest, "nack me").await?;
    let m = c.expect_message().await?;
    Ok((c, m))
}

async fn nack_accepted(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("nack");
    let (mut c, m) = received_one(&ctx, &dest).await?;
    c.ack("NACK", &m, &[]).await?;
    c.disconnect().await
}

async fn nack_11(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("nack11");
    let (mut c, m) = received_one_v(&ctx, &dest, Version::V1_1).await?;
    c.ack("NACK", &m, &[]).await?;
    c.disconnect().await
}

async fn nack_redelivers(ctx: Ctx) -> Result<()> {
    let dest = ctx.queue("nackre");
    let (mut c, m) = received_one(&ctx, &dest).await?;
    c.ack("NACK", &m, &[]).await?;
    c.disconnect().await?;
    let again = drain(&ctx, &dest).await?;
    ensure!(
        bodies(&again) == ["nack me"],
        "expected the NACKed message to be delivered again, got {:?}",
        bodies(&again)
    );
    Ok(())
}

async fn redelivered_header(ctx: Ctx) -> Result<()> {
    let (_, again) = consume_then_redeliver(&ctx, Version::V1_2, "client", 1, &[]).await?;
    let m = again
        .first()
        .context("the unacked message was not redelivered")?;
    ensure!(
        m.get("redelivered") == Some("true"),
        "redelivered message has redelivered:{:?}",
        m.get("redelivered")
    );
    Ok(())
}
