//! Spec section "ERROR", and frames the server must reject.

use anyhow::Result;
use stompede_codec::Version;

use super::{case, ensure, Case, Ctx};
use crate::client::frame;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "error/message-and-body",
            Core,
            "ERROR carries a message header and a body describing the problem, then the connection closes",
            message_and_body
        ),
        case!(
            "error/receipt-id",
            Core,
            "ERROR caused by a frame with receipt carries receipt-id = that receipt",
            receipt_id
        ),
        case!(
            "error/nothing-after-error",
            Core,
            "frames pipelined after the one that caused ERROR are not processed",
            nothing_after_error
        ),
        case!(
            "malformed/unknown-command",
            Core,
            "an unknown command gets ERROR and the connection closes",
            unknown_command
        ),
        case!(
            "malformed/lowercase-command",
            Core,
            "commands are case-sensitive: `send` gets ERROR",
            lowercase_command
        ),
        case!(
            "malformed/invalid-escape-1.2",
            Core,
            "an undefined escape (\\t) in a 1.2 header gets ERROR",
            invalid_escape_12
        ),
        case!(
            "malformed/cr-escape-in-1.1",
            Core,
            "\\r is not an escape in 1.1: a 1.1 header using it gets ERROR",
            cr_escape_11
        ),
        case!(
            "malformed/content-length-without-nul",
            Core,
            "content-length bytes not followed by NUL gets ERROR",
            content_length_without_nul
        ),
        case!(
            "malformed/send-without-destination",
            Core,
            "SEND without destination gets ERROR",
            send_without_destination
        ),
    ]
}

async fn message_and_body(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.send(frame("SEND", &[("x-no", "destination")], "payload"))
        .await?;
    let e = c.expect_error_and_close().await?;
    ensure!(
        e.get("message").is_some_and(|m| !m.trim().is_empty()),
        "ERROR has no (or an empty) message header"
    );
    ensure!(!e.body.is_empty(), "ERROR has an empty body");
    if let Some(cl) = e.get("content-length") {
        ensure!(
            cl == e.body.len().to_string(),
            "ERROR content-length {cl} but a body of {} bytes",
            e.body.len()
        );
    }
    Ok(())
}

async fn receipt_id(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    let receipt = ctx.unique("bad");
    c.send(frame("SEND", &[("receipt", &receipt)], "no destination"))
        .await?;
    let e = c.expect_error_and_close().await?;
    ensure!(
        e.get("receipt-id") == Some(receipt.as_str()),
        "ERROR receipt-id {:?}, expected {receipt:?}",
        e.get("receipt-id")
    );
    Ok(())
}

async fn nothing_after_error(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("aftererr");
    let mut sub = ctx.connect12().await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut c = ctx.connect12().await?;
    let mut raw = frame("BOGUS", &[], "");
    raw.extend(frame(
        "SEND",
        &[("destination", &dest), ("receipt", "r")],
        "after",
    ));
    c.send(&raw).await?;
    let e = c.recv().await?;
    ensure!(
        e.command == stompede_codec::Command::Error,
        "expected ERROR first, got {}",
        crate::client::describe(&e)
    );
    c.expect_close().await?;
    sub.expect_silence(ctx.quiet()).await?;
    sub.disconnect().await
}

async fn reject(ctx: &Ctx, version: Version, raw: Vec<u8>) -> Result<()> {
    let mut c = ctx.connect(version).await?;
    c.send(&raw).await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn unknown_command(ctx: Ctx) -> Result<()> {
    reject(&ctx, Version::V1_2, frame("FROBNICATE", &[("x", "y")], "")).await
}

async fn lowercase_command(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("lower");
    reject(
        &ctx,
        Version::V1_2,
        frame("send", &[("destination", &dest)], "x"),
    )
    .await
}

async fn invalid_escape_12(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("badesc");
    reject(
        &ctx,
        Version::V1_2,
        frame("SEND", &[("destination", &dest), ("x-bad", r"a\tb")], ""),
    )
    .await
}

async fn cr_escape_11(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("badesc11");
    reject(
        &ctx,
        Version::V1_1,
        frame("SEND", &[("destination", &dest), ("x-bad", r"a\rb")], ""),
    )
    .await
}

async fn content_length_without_nul(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("badlen");
    // content-length says 3, but the 4th body byte is 'd', not NUL.
    reject(
        &ctx,
        Version::V1_2,
        frame(
            "SEND",
            &[("destination", &dest), ("content-length", "3")],
            "abcdef",
        ),
    )
    .await
}

async fn send_without_destination(ctx: Ctx) -> Result<()> {
    reject(&ctx, Version::V1_2, frame("SEND", &[], "nowhere")).await
}
