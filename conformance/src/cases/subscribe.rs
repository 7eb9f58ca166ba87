//! Spec sections "SUBSCRIBE" (id header) and "UNSUBSCRIBE".

use anyhow::Result;
use stompede_codec::Version;

use super::{body, case, ensure, Case, Ctx};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "subscribe/unsubscribe-stops-delivery",
            Core,
            "after UNSUBSCRIBE (with receipt) no MESSAGE arrives for that subscription",
            unsubscribe_stops
        ),
        case!(
            "subscribe/id-reusable-after-unsubscribe",
            Core,
            "a subscription id can be used again once unsubscribed",
            id_reusable
        ),
        case!(
            "subscribe/missing-id-1.2",
            Core,
            "SUBSCRIBE without id in 1.2 gets ERROR",
            missing_id_12
        ),
        case!(
            "subscribe/missing-id-1.1",
            Core,
            "SUBSCRIBE without id in 1.1 gets ERROR",
            missing_id_11
        ),
        case!(
            "subscribe/1.0-without-id",
            Core,
            "in 1.0 SUBSCRIBE without id is valid and messages flow",
            without_id_10
        ),
        case!(
            "subscribe/1.0-unsubscribe-by-destination",
            Core,
            "in 1.0 UNSUBSCRIBE may name the destination instead of an id",
            unsubscribe_by_destination_10
        ),
        case!(
            "subscribe/duplicate-id",
            Core,
            "a second SUBSCRIBE with an id already in use on the connection gets ERROR",
            duplicate_id
        ),
        case!(
            "subscribe/missing-destination",
            Core,
            "SUBSCRIBE without destination gets ERROR",
            missing_destination
        ),
        case!(
            "subscribe/unsubscribe-missing-id-1.2",
            Core,
            "UNSUBSCRIBE without id in 1.2 gets ERROR",
            unsubscribe_missing_id
        ),
    ]
}

async fn unsubscribe_stops(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("unsub");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "auto").await?;
    c.publish(&dest, "before").await?;
    let m = c.expect_message().await?;
    ensure!(body(&m) == "before", "body {:?}", body(&m));
    c.request("UNSUBSCRIBE", &[("id", "s")], "").await?;
    c.publish(&dest, "after").await?;
    c.expect_silence(ctx.quiet()).await?;
    c.disconnect().await
}

async fn id_reusable(ctx: Ctx) -> Result<()> {
    let first = ctx.topic("reuse-a");
    let second = ctx.topic("reuse-b");
    let mut c = ctx.connect12().await?;
    c.subscribe(&first, "s", "auto").await?;
    c.request("UNSUBSCRIBE", &[("id", "s")], "").await?;
    c.subscribe(&second, "s", "auto").await?;
    c.publish(&first, "old").await?;
    c.publish(&second, "new").await?;
    let m = c.expect_message().await?;
    ensure!(
        body(&m) == "new" && m.get("destination") == Some(second.as_str()),
        "expected the message of the new subscription, got body {:?} from {:?}",
        body(&m),
        m.get("destination")
    );
    c.expect_silence(ctx.quiet() / 2).await?;
    c.disconnect().await
}

async fn missing_id(ctx: &Ctx, version: Version) -> Result<()> {
    let mut c = ctx.connect(version).await?;
    let dest = ctx.topic("noid");
    c.send_frame("SUBSCRIBE", &[("destination", &dest)], "")
        .await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn missing_id_12(ctx: Ctx) -> Result<()> {
    missing_id(&ctx, Version::V1_2).await
}

async fn missing_id_11(ctx: Ctx) -> Result<()> {
    missing_id(&ctx, Version::V1_1).await
}

async fn without_id_10(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("noid10");
    let mut c = ctx.connect(Version::V1_0).await?;
    c.request("SUBSCRIBE", &[("destination", &dest)], "")
        .await?;
    c.publish(&dest, "hi").await?;
    let m = c.expect_message().await?;
    ensure!(body(&m) == "hi", "body {:?}", body(&m));
    c.disconnect().await
}

async fn unsubscribe_by_destination_10(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("unsub10");
    let mut c = ctx.connect(Version::V1_0).await?;
    c.request("SUBSCRIBE", &[("destination", &dest)], "")
        .await?;
    c.request("UNSUBSCRIBE", &[("destination", &dest)], "")
        .await?;
    c.publish(&dest, "after").await?;
    c.expect_silence(ctx.quiet()).await?;
    c.disconnect().await
}

async fn duplicate_id(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.subscribe(&ctx.topic("dup-a"), "same", "auto").await?;
    let other = ctx.topic("dup-b");
    c.send_frame("SUBSCRIBE", &[("destination", &other), ("id", "same")], "")
        .await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn missing_destination(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    c.send_frame("SUBSCRIBE", &[("id", "s")], "").await?;
    c.expect_error_and_close().await?;
    Ok(())
}

async fn unsubscribe_missing_id(ctx: Ctx) -> Result<()> {
    let mut c = ctx.connect12().await?;
    let dest = ctx.topic("unsub-noid");
    c.subscribe(&dest, "s", "auto").await?;
    c.send_frame("UNSUBSCRIBE", &[("destination", &dest)], "")
        .await?;
    c.expect_error_and_close().await?;
    Ok(())
}
