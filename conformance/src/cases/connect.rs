//! Spec section "Connecting": CONNECT/STOMP, CONNECTED, protocol
//! negotiation.

use anyhow::Result;
use stompede_codec::{Command, Version};

use super::{case, ensure, Case, Ctx};
use crate::client::{describe, frame};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "connect/connect-frame",
            Core,
            "CONNECT with accept-version:1.2 and host gets CONNECTED version:1.2",
            connect_frame
        ),
        case!(
            "connect/stomp-frame",
            Core,
            "the STOMP command is accepted like CONNECT",
            stomp_frame
        ),
        case!(
            "connect/connected-headers",
            Core,
            "CONNECTED carries version, server (name/version), heart-beat (x,y) and optionally session",
            connected_headers
        ),
        case!(
            "connect/no-accept-version-is-1.0",
            Core,
            "CONNECT without accept-version is a 1.0 session: version absent or 1.0",
            no_accept_version
        ),
        case!(
            "connect/negotiate-highest",
            Core,
            "accept-version:1.0,1.1,1.2 negotiates 1.2",
            negotiate_highest
        ),
        case!(
            "connect/negotiate-1.1",
            Core,
            "accept-version:1.1 negotiates 1.1",
            negotiate_11
        ),
        case!(
            "connect/negotiate-1.0",
            Core,
            "accept-version:1.0 negotiates 1.0",
            negotiate_10
        ),
        case!(
            "connect/negotiate-unordered",
            Core,
            "accept-version:1.1,1.0 negotiates 1.1 (the highest common, whatever the order)",
            negotiate_unordered
        ),
        case!(
            "connect/unsupported-version",
            Core,
            "accept-version:2.0 gets ERROR and the connection closes",
            unsupported_version
        ),
        case!(
            "connect/frame-before-connect",
            Core,
            "a SEND before CONNECT gets ERROR and the connection closes",
            frame_before_connect
        ),
        case!(
            "connect/session-works",
            Core,
            "after CONNECTED a SEND with receipt is confirmed",
            session_works
        ),
    ]
}

async fn connect_frame(ctx: Ctx) -> Result<()> {
    let (conn, connected) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[]))
        .await?;
    ensure!(
        connected.get("version") == Some("1.2"),
        "expected version:1.2, got {}",
        describe(&connected)
    );
    conn.disconnect().await
}

async fn stomp_frame(ctx: Ctx) -> Result<()> {
    let (conn, connected) = ctx
        .handshake(&ctx.connect_frame("STOMP", Some("1.2"), &[]))
        .await?;
    ensure!(
        connected.get("version") == Some("1.2"),
        "expected version:1.2, got {:?}",
        connected.get("version")
    );
    conn.disconnect().await
}

fn parse_pair(value: &str) -> Option<(u64, u64)> {
    let (a, b) = value.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

async fn connected_headers(ctx: Ctx) -> Result<()> {
    let (conn, c) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[("heart-beat", "0,0")]))
        .await?;
    ensure!(
        c.get("version").is_some(),
        "CONNECTED has no version header"
    );
    let server = c.get("server");
    ensure!(server.is_some(), "CONNECTED has no server header");
    let server = server.unwrap_or_default();
    ensure!(
        !server.is_empty() && !server.starts_with('/'),
        "server header {server:?} is not name[/version]"
    );
    let hb = c.get("heart-beat");
    ensure!(hb.is_some(), "CONNECTED has no heart-beat header");
    let hb = hb.unwrap_or_default();
    ensure!(
        parse_pair(hb).is_some(),
        "heart-beat header {hb:?} is not two comma-separated integers"
    );
    if let Some(session) = c.get("session") {
        ensure!(!session.is_empty(), "session header is empty");
    }
    conn.disconnect().await
}

async fn no_accept_version(ctx: Ctx) -> Result<()> {
    let (conn, c) = ctx
        .handshake(&ctx.connect_frame("CONNECT", None, &[]))
        .await?;
    ensure!(
        matches!(c.get("version"), None | Some("1.0")),
        "a client without accept-version speaks 1.0, but the server chose {:?}",
        c.get("version")
    );
    conn.disconnect().await
}

async fn negotiate(ctx: &Ctx, accept: &str, want: Version) -> Result<()> {
    let (conn, c) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some(accept), &[]))
        .await?;
    ensure!(
        c.get("version") == Some(want.as_str()),
        "accept-version:{accept} should negotiate {want}, got version {:?}",
        c.get("version")
    );
    conn.disconnect().await
}

async fn negotiate_highest(ctx: Ctx) -> Result<()> {
    negotiate(&ctx, "1.0,1.1,1.2", Version::V1_2).await
}

async fn negotiate_11(ctx: Ctx) -> Result<()> {
    negotiate(&ctx, "1.1", Version::V1_1).await
}

async fn negotiate_10(ctx: Ctx) -> Result<()> {
    let (conn, c) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.0"), &[]))
        .await?;
    ensure!(
        matches!(c.get("version"), None | Some("1.0")),
        "accept-version:1.0 should negotiate 1.0, got version {:?}",
        c.get("version")
    );
    conn.disconnect().await
}

async fn negotiate_unordered(ctx: Ctx) -> Result<()> {
    negotiate(&ctx, "1.1,1.0", Version::V1_1).await
}

async fn unsupported_version(ctx: Ctx) -> Result<()> {
    let mut conn = ctx.open().await?;
    conn.send(ctx.connect_frame("CONNECT", Some("2.0"), &[]))
        .await?;
    let error = conn.expect_error_and_close().await?;
    if let Some(versions) = error.get("version") {
        ensure!(
            !versions.split(',').any(|v| v.trim() == "2.0"),
            "ERROR lists 2.0 among supported versions: {versions:?}"
        );
    }
    Ok(())
}

async fn frame_before_connect(ctx: Ctx) -> Result<()> {
    let mut conn = ctx.open().await?;
    let dest = ctx.queue("before-connect");
    conn.send(frame("SEND", &[("destination", &dest)], "too early"))
        .await?;
    let f = conn.recv().await?;
    ensure!(
        f.command == Command::Error,
        "expected ERROR, got {}",
        describe(&f)
    );
    conn.expect_close().await
}

async fn session_works(ctx: Ctx) -> Result<()> {
    let mut conn = ctx.connect12().await?;
    conn.publish(&ctx.topic("session"), "hello").await?;
    conn.disconnect().await
}
