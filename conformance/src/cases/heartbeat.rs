//! Spec section "Heart-beating".

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use tokio::time::Instant;

use super::{case, skip, Case, Ctx};
use crate::client::{describe, Event};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "heart-beat/server-sends",
            Core,
            "heart-beat:0,200 makes an idle server send EOLs at the negotiated interval (up to 3x late)",
            server_sends
        ),
        case!(
            "heart-beat/none-requested",
            Core,
            "heart-beat:0,0 (or none) means the server sends no heart-beats",
            none_requested
        ),
        case!(
            "heart-beat/client-keeps-alive",
            Core,
            "a client that heart-beats as negotiated stays connected past several intervals",
            client_keeps_alive
        ),
        case!(
            "heart-beat/silent-client-dropped",
            Slow,
            "heart-beat:100,0 then silence: the server eventually closes the connection",
            silent_client_dropped
        ),
    ]
}

fn pair(value: Option<&str>) -> Result<(u64, u64)> {
    let value = value.unwrap_or("0,0");
    let parsed = value
        .split_once(',')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)));
    parsed.with_context(|| format!("CONNECTED heart-beat {value:?} is not two integers"))
}

async fn server_sends(ctx: Ctx) -> Result<()> {
    let (mut conn, connected) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[("heart-beat", "0,200")]))
        .await?;
    let (sx, _sy) = pair(connected.get("heart-beat"))?;
    if sx == 0 {
        skip!("the server declines to send heart-beats (CONNECTED heart-beat:0,...), which the spec allows");
    }
    let interval = Duration::from_millis(sx.max(200));
    // Up to 3x late for short intervals; long ones get interval + 5 s.
    let allowed = (interval * 3).min(interval + Duration::from_secs(5));
    // Two consecutive beats prove the rhythm; with a long interval one beat
    // (within the allowance) has to do, to keep the case short.
    let wanted = if interval <= Duration::from_secs(2) {
        3
    } else {
        1
    };
    let connected_at = Instant::now();
    let mut last = connected_at;
    let mut beats = 0u32;
    while beats < wanted {
        match conn.next_event(last + allowed).await? {
            Event::HeartBeat => {
                last = Instant::now();
                // EOLs glued to CONNECTED's NUL are padding, not beats.
                if last.duration_since(connected_at) > Duration::from_millis(50) {
                    beats += 1;
                }
            }
            Event::Frame(f) => bail!("unexpected {} while idle", describe(&f)),
            Event::Closed => bail!("the server closed the connection after {beats} heart-beats"),
            Event::Timeout => bail!(
                "negotiated a server heart-beat every {} ms (CONNECTED heart-beat:{sx},...), \
                 but nothing arrived for {} ms (after {beats} heart-beats)",
                interval.as_millis(),
                allowed.as_millis()
            ),
        }
    }
    conn.disconnect().await
}

async fn none_requested(ctx: Ctx) -> Result<()> {
    let (mut conn, _) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[("heart-beat", "0,0")]))
        .await?;
    // EOLs right after CONNECTED's NUL are allowed padding, not beats.
    let settle = Instant::now() + Duration::from_millis(150);
    loop {
        match conn.next_event(settle).await? {
            Event::Timeout => break,
            Event::HeartBeat => {}
            Event::Frame(f) => bail!("unexpected {}", describe(&f)),
            Event::Closed => bail!("the server closed the connection"),
        }
    }
    let deadline = Instant::now() + ctx.quiet().max(Duration::from_millis(800));
    match conn.next_event(deadline).await? {
        Event::Timeout => {}
        Event::HeartBeat => {
            bail!("the server sent a heart-beat although the client asked for none")
        }
        Event::Frame(f) => bail!("unexpected {}", describe(&f)),
        Event::Closed => bail!("the server closed the connection"),
    }
    conn.disconnect().await
}

async fn client_keeps_alive(ctx: Ctx) -> Result<()> {
    let (mut conn, connected) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[("heart-beat", "100,0")]))
        .await?;
    let (_sx, sy) = pair(connected.get("heart-beat"))?;
    let interval = Duration::from_millis(100.max(sy));
    // Beat well within the interval for a while. A default run keeps this
    // short (up to 6 s); with --slow it lasts four intervals (up to 60 s),
    // past any sane grace period of the server.
    let total = if ctx.slow() {
        (interval * 4).clamp(Duration::from_millis(1500), Duration::from_secs(60))
    } else {
        (interval * 2 + Duration::from_millis(500))
            .clamp(Duration::from_millis(1500), Duration::from_secs(6))
    };
    let tick = Duration::from_millis(100).min(interval / 2);
    let end = Instant::now() + total;
    while Instant::now() < end {
        conn.send(b"\n").await.context("sending a heart-beat")?;
        match conn.next_event(Instant::now() + tick).await? {
            Event::Closed => bail!("the server closed a connection that was heart-beating"),
            Event::Frame(f) => bail!("unexpected {}", describe(&f)),
            Event::HeartBeat | Event::Timeout => {}
        }
    }
    conn.publish(&ctx.topic("keepalive"), "still here").await?;
    conn.disconnect().await
}

async fn silent_client_dropped(ctx: Ctx) -> Result<()> {
    let (mut conn, connected) = ctx
        .handshake(&ctx.connect_frame("CONNECT", Some("1.2"), &[("heart-beat", "100,0")]))
        .await?;
    let (_sx, sy) = pair(connected.get("heart-beat"))?;
    if sy == 0 {
        skip!("the server does not want client heart-beats (CONNECTED heart-beat:...,0)");
    }
    let interval = Duration::from_millis(100.max(sy));
    let wait = (interval * 5)
        .max(Duration::from_secs(30))
        .min(Duration::from_secs(120));
    conn.expect_close_within(wait).await.with_context(|| {
        format!(
            "negotiated a client heart-beat every {} ms, then stayed silent",
            interval.as_millis()
        )
    })
}
