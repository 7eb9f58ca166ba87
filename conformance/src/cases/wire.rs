//! Framing on the wire: frames split at arbitrary points, many frames in
//! one write, CRLF line endings (1.2), EOLs between frames. Over WebSocket
//! a "write" is one message, so these also cover a frame split across WS
//! messages and several frames in one WS message.

use anyhow::{Context as _, Result};
use stompede_codec::{Command, Version};

use super::{bodies, body, case, ensure, Case, Ctx};
use crate::client::{describe, frame};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "wire/byte-by-byte",
            Core,
            "CONNECT, SUBSCRIBE and SEND written one byte at a time (one WS message per byte) work",
            byte_by_byte
        ),
        case!(
            "wire/split-in-two",
            Core,
            "a SEND split in two writes (two WS messages) at various points works",
            split_in_two
        ),
        case!(
            "wire/many-frames-one-write",
            Core,
            "SUBSCRIBE and six SENDs in one write (one WS message) are all processed",
            many_frames_one_write
        ),
        case!(
            "wire/crlf-1.2",
            Core,
            "1.2 frames with CRLF line endings (CONNECT included) work; no CR leaks into values",
            crlf_12
        ),
        case!(
            "wire/eols-between-frames",
            Core,
            "EOLs (LF and CRLF) between frames are ignored as heart-beats",
            eols_between_frames
        ),
    ]
}

/// Rewrites the LFs of a frame's command and header lines (up to and
/// including the blank line) as CRLF; the body is left alone.
fn crlf(raw: &[u8]) -> Vec<u8> {
    let end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or(raw.len(), |p| p + 2);
    let mut out = Vec::with_capacity(raw.len() + 16);
    for &b in &raw[..end] {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out.extend_from_slice(&raw[end..]);
    out
}

async fn byte_by_byte(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("bytes");
    let mut c = ctx.open().await?;
    c.send_bytewise(ctx.connect_frame("CONNECT", Some("1.2"), &[]))
        .await?;
    let connected = c.expect(Command::Connected).await?;
    ensure!(
        connected.get("version") == Some("1.2"),
        "version {:?}",
        connected.get("version")
    );
    c.set_version(Version::V1_2);
    c.send_bytewise(frame(
        "SUBSCRIBE",
        &[("destination", &dest), ("id", "s"), ("receipt", "sub")],
        "",
    ))
    .await?;
    c.await_receipt("sub").await?;
    c.send_bytewise(frame(
        "SEND",
        &[
            ("destination", &dest),
            ("content-length", "5"),
            ("x-h", r"a\cb"),
        ],
        "he\0lo",
    ))
    .await?;
    let m = c.expect_message().await?;
    ensure!(&m.body[..] == b"he\0lo", "body {:?}", m.body);
    ensure!(m.get("x-h") == Some("a:b"), "x-h {:?}", m.get("x-h"));
    c.disconnect().await
}

async fn split_in_two(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("split");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "s", "auto").await?;
    let raw = frame(
        "SEND",
        &[("destination", &dest), ("x-k", "value"), ("receipt", "R")],
        "body-text",
    );
    let blank = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .context("no blank line")?;
    let points = [
        ("after the first byte", 1),
        ("after the command", 4),
        ("after the command's EOL", 5),
        ("inside a header name", 8),
        ("between the blank-line EOLs", blank + 1),
        ("inside the body", blank + 5),
        ("right before the NUL", raw.len() - 1),
    ];
    for (what, at) in points {
        c.send_parts(&[&raw[..at], &raw[at..]]).await?;
        c.await_receipt("R")
            .await
            .with_context(|| format!("split {what} (at byte {at})"))?;
        let m = c
            .expect_message()
            .await
            .with_context(|| format!("split {what} (at byte {at})"))?;
        ensure!(
            body(&m) == "body-text" && m.get("x-k") == Some("value"),
            "split {what}: got {} body {:?}",
            describe(&m),
            body(&m)
        );
    }
    c.disconnect().await
}

async fn many_frames_one_write(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("batch");
    let mut c = ctx.connect12().await?;
    let mut raw = frame(
        "SUBSCRIBE",
        &[("destination", &dest), ("id", "s"), ("receipt", "sub")],
        "",
    );
    for i in 0..5 {
        raw.extend(frame("SEND", &[("destination", &dest)], format!("b{i}")));
    }
    raw.extend(frame(
        "SEND",
        &[
            ("destination", &dest),
            ("receipt", "last"),
            ("content-length", "2"),
        ],
        "b5",
    ));
    c.send(&raw).await?;
    let mut receipts = Vec::new();
    let mut messages = Vec::new();
    while receipts.len() < 2 || messages.len() < 6 {
        let f = c.recv().await.with_context(|| {
            format!(
                "after {} receipts and {} messages",
                receipts.len(),
                messages.len()
            )
        })?;
        match f.command {
            Command::Receipt => receipts.push(f.get("receipt-id").unwrap_or("").to_owned()),
            Command::Message => messages.push(f),
            _ => anyhow::bail!("unexpected {}", describe(&f)),
        }
    }
    receipts.sort();
    ensure!(receipts == ["last", "sub"], "receipts {receipts:?}");
    ensure!(
        bodies(&messages) == ["b0", "b1", "b2", "b3", "b4", "b5"],
        "messages {:?}",
        bodies(&messages)
    );
    c.disconnect().await
}

async fn crlf_12(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("crlf");
    let (mut c, connected) = ctx
        .handshake(&crlf(&ctx.connect_frame("CONNECT", Some("1.2"), &[])))
        .await?;
    ensure!(
        connected.get("version") == Some("1.2"),
        "version {:?}",
        connected.get("version")
    );
    c.send(crlf(&frame(
        "SUBSCRIBE",
        &[("destination", &dest), ("id", "s"), ("receipt", "sub")],
        "",
    )))
    .await?;
    c.await_receipt("sub").await?;
    c.send(crlf(&frame(
        "SEND",
        &[("destination", &dest), ("x-k", "v"), ("receipt", "snd")],
        "line\r\nbody",
    )))
    .await?;
    c.await_receipt("snd").await?;
    let m = c.expect_message().await?;
    ensure!(
        m.get("destination") == Some(dest.as_str()),
        "destination {:?} (a CR must not stay in the value)",
        m.get("destination")
    );
    ensure!(m.get("x-k") == Some("v"), "x-k {:?}", m.get("x-k"));
    ensure!(body(&m) == "line\r\nbody", "body {:?}", body(&m));
    c.disconnect().await
}

async fn eols_between_frames(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("eols");
    let mut c = ctx.connect12().await?;
    let mut raw = b"\n\r\n\n".to_vec();
    raw.extend(frame(
        "SUBSCRIBE",
        &[("destination", &dest), ("id", "s"), ("receipt", "sub")],
        "",
    ));
    raw.extend_from_slice(b"\r\n\n");
    raw.extend(frame(
        "SEND",
        &[("destination", &dest), ("receipt", "snd")],
        "x",
    ));
    raw.extend_from_slice(b"\n\n\n");
    c.send(&raw).await?;
    c.await_receipt("sub").await?;
    c.await_receipt("snd").await?;
    let m = c.expect_message().await?;
    ensure!(body(&m) == "x", "body {:?}", body(&m));
    c.disconnect().await
}
