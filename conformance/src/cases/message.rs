//! Spec sections "SEND", "SUBSCRIBE", "MESSAGE", "Value Encoding", "Body",
//! "Standard Headers" and "Repeated Header Entries".

use anyhow::{Context as _, Result};
use stompede_codec::{Command, Frame, Version};

use super::{body, case, ensure, Case, Ctx};
use crate::client::{describe, frame};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(
            "message/topic-fanout",
            Core,
            "a SEND to a topic reaches every subscriber (three connections)",
            topic_fanout
        ),
        case!(
            "message/required-headers",
            Core,
            "MESSAGE has destination, message-id and subscription = the SUBSCRIBE id",
            required_headers
        ),
        case!(
            "message/two-subscriptions-one-connection",
            Core,
            "two subscriptions of one connection to one topic each get the message with their own id",
            two_subscriptions
        ),
        case!(
            "message/user-headers",
            Core,
            "user-defined headers pass through unchanged",
            user_headers
        ),
        case!(
            "message/content-type",
            Core,
            "content-type passes through",
            content_type
        ),
        case!(
            "message/content-length-nul",
            Core,
            "a content-length body with NULs inside round-trips exactly",
            content_length_nul
        ),
        case!(
            "message/binary-body",
            Core,
            "a content-length body of non-UTF-8 bytes round-trips (over WebSocket: as a binary message)",
            binary_body
        ),
        case!(
            "message/no-content-length",
            Core,
            "a body without content-length ends at the first NUL",
            no_content_length
        ),
        case!(
            "message/empty-body",
            Core,
            "an empty body round-trips as empty",
            empty_body
        ),
        case!(
            "message/large-body",
            Core,
            "a 256 KiB body round-trips",
            large_body
        ),
        case!(
            "message/escapes-1.2",
            Core,
            "1.2 header values with \\n \\c \\\\ \\r escapes round-trip",
            escapes_12
        ),
        case!(
            "message/escapes-1.1",
            Core,
            "1.1 header values with \\n \\c \\\\ escapes round-trip",
            escapes_11
        ),
        case!(
            "message/escaped-header-name",
            Core,
            "escapes apply to header names too (1.2)",
            escaped_header_name
        ),
        case!(
            "message/escapes-cross-version",
            Core,
            "a value sent escaped in 1.2 arrives escaped the 1.1 way at a 1.1 subscriber",
            escapes_cross_version
        ),
        case!(
            "message/utf8-header-values",
            Core,
            "non-ASCII UTF-8 header values round-trip",
            utf8_values
        ),
        case!(
            "message/1.0-no-unescaping",
            Core,
            "STOMP 1.0 has no escapes: a backslash in a 1.0 value is literal",
            no_unescaping_10
        ),
        case!(
            "message/repeated-header-first-wins",
            Core,
            "of repeated headers the first is the value that is delivered",
            repeated_header
        ),
        case!(
            "message/message-id-not-forgeable",
            Core,
            "a client-supplied message-id does not become the MESSAGE's message-id",
            message_id_not_forgeable
        ),
    ]
}

/// Subscribes to a fresh topic on a `version` connection, sends one SEND
/// with the given raw (already escaped) headers and body, and returns the
/// MESSAGE.
async fn roundtrip(
    ctx: &Ctx,
    version: Version,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> Result<Frame> {
    let mut conn = ctx.connect(version).await?;
    let dest = ctx.topic("rt");
    conn.subscribe(&dest, "sub-0", "auto").await?;
    let mut all = vec![("destination", dest.as_str())];
    all.extend_from_slice(headers);
    conn.request("SEND", &all, payload).await?;
    let msg = conn.expect_message().await?;
    ensure!(
        msg.get("destination") == Some(dest.as_str()),
        "MESSAGE destination {:?}, expected {dest:?}",
        msg.get("destination")
    );
    conn.disconnect().await?;
    Ok(msg)
}

fn header_is(msg: &Frame, name: &str, want: &str) -> Result<()> {
    ensure!(
        msg.get(name) == Some(want),
        "header {name}: expected {want:?}, got {:?}",
        msg.get(name)
    );
    Ok(())
}

async fn topic_fanout(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("fanout");
    let mut subs = Vec::new();
    for i in 0..3 {
        let mut c = ctx.connect12().await?;
        c.subscribe(&dest, &format!("s{i}"), "auto").await?;
        subs.push(c);
    }
    let mut sender = ctx.connect12().await?;
    sender.publish(&dest, "to everyone").await?;
    for (i, c) in subs.iter_mut().enumerate() {
        let m = c
            .expect_message()
            .await
            .with_context(|| format!("subscriber {i}"))?;
        ensure!(
            body(&m) == "to everyone",
            "subscriber {i} got body {:?}",
            body(&m)
        );
        c.expect_silence(ctx.quiet() / 2)
            .await
            .with_context(|| format!("subscriber {i} must get exactly one copy"))?;
    }
    for c in subs {
        c.disconnect().await?;
    }
    sender.disconnect().await
}

async fn required_headers(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("required");
    let mut c = ctx.connect12().await?;
    let id = ctx.unique("sub");
    c.subscribe(&dest, &id, "auto").await?;
    c.publish(&dest, "x").await?;
    let m = c.expect_message().await?;
    header_is(&m, "destination", &dest)?;
    header_is(&m, "subscription", &id)?;
    let mid = m.get("message-id").unwrap_or_default();
    ensure!(
        !mid.is_empty(),
        "MESSAGE has no (or an empty) message-id: {}",
        describe(&m)
    );
    c.disconnect().await
}

async fn two_subscriptions(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("twosubs");
    let mut c = ctx.connect12().await?;
    c.subscribe(&dest, "a", "auto").await?;
    c.subscribe(&dest, "b", "auto").await?;
    c.publish(&dest, "x").await?;
    let msgs = c.expect_messages(2).await?;
    let mut ids: Vec<&str> = msgs.iter().filter_map(|m| m.get("subscription")).collect();
    ids.sort_unstable();
    ensure!(
        ids == ["a", "b"],
        "subscription headers {ids:?}, expected [\"a\", \"b\"]"
    );
    c.expect_silence(ctx.quiet() / 2).await?;
    c.disconnect().await
}

async fn user_headers(ctx: Ctx) -> Result<()> {
    let m = roundtrip(
        &ctx,
        Version::V1_2,
        &[
            ("x-custom", "some value"),
            ("X-Mixed-Case", "Yes"),
            ("x-empty", ""),
        ],
        b"body",
    )
    .await?;
    header_is(&m, "x-custom", "some value")?;
    header_is(&m, "X-Mixed-Case", "Yes")?;
    header_is(&m, "x-empty", "")?;
    ensure!(body(&m) == "body", "body {:?}", body(&m));
    Ok(())
}

async fn content_type(ctx: Ctx) -> Result<()> {
    let m = roundtrip(
        &ctx,
        Version::V1_2,
        &[("content-type", "application/json;charset=utf-8")],
        br#"{"a":1}"#,
    )
    .await?;
    header_is(&m, "content-type", "application/json;charset=utf-8")?;
    ensure!(body(&m) == r#"{"a":1}"#, "body {:?}", body(&m));
    Ok(())
}

async fn exact_body(ctx: &Ctx, payload: &[u8], content_type: &str) -> Result<()> {
    let len = payload.len().to_string();
    let m = roundtrip(
        ctx,
        Version::V1_2,
        &[("content-length", &len), ("content-type", content_type)],
        payload,
    )
    .await?;
    ensure!(
        &m.body[..] == payload,
        "body {:?}, expected {:?}",
        m.body,
        payload
    );
    if let Some(cl) = m.get("content-length") {
        ensure!(cl == len, "MESSAGE content-length {cl:?}, expected {len:?}");
    }
    Ok(())
}

async fn content_length_nul(ctx: Ctx) -> Result<()> {
    exact_body(&ctx, b"a\0b\0\0c\n\0", "text/plain").await
}

async fn binary_body(ctx: Ctx) -> Result<()> {
    exact_body(
        &ctx,
        b"\x00\xff\xfe\x80binary\xc3\x28\0",
        "application/octet-stream",
    )
    .await
}

async fn no_content_length(ctx: Ctx) -> Result<()> {
    let m = roundtrip(&ctx, Version::V1_2, &[], b"hello\nworld").await?;
    ensure!(body(&m) == "hello\nworld", "body {:?}", body(&m));
    Ok(())
}

async fn empty_body(ctx: Ctx) -> Result<()> {
    let m = roundtrip(&ctx, Version::V1_2, &[("x-k", "v")], b"").await?;
    ensure!(m.body.is_empty(), "body {:?}, expected empty", m.body);
    Ok(())
}

async fn large_body(ctx: Ctx) -> Result<()> {
    let payload: Vec<u8> = (0..256 * 1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    let len = payload.len().to_string();
    let m = roundtrip(&ctx, Version::V1_2, &[("content-length", &len)], &payload).await?;
    ensure!(
        m.body.len() == payload.len() && m.body[..] == payload[..],
        "body of {} bytes differs from the {} bytes sent",
        m.body.len(),
        payload.len()
    );
    Ok(())
}

async fn escapes_12(ctx: Ctx) -> Result<()> {
    let m = roundtrip(
        &ctx,
        Version::V1_2,
        &[("x-esc", r"line1\nline2\ccolon\\backslash\rcr")],
        b"",
    )
    .await?;
    header_is(&m, "x-esc", "line1\nline2:colon\\backslash\rcr")
}

async fn escapes_11(ctx: Ctx) -> Result<()> {
    let m = roundtrip(
        &ctx,
        Version::V1_1,
        &[("x-esc", r"line1\nline2\ccolon\\backslash")],
        b"",
    )
    .await?;
    header_is(&m, "x-esc", "line1\nline2:colon\\backslash")
}

async fn escaped_header_name(ctx: Ctx) -> Result<()> {
    let m = roundtrip(&ctx, Version::V1_2, &[(r"x\cname", "v")], b"").await?;
    header_is(&m, "x:name", "v")
}

async fn escapes_cross_version(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("xver");
    let mut sub = ctx.connect(Version::V1_1).await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut sender = ctx.connect12().await?;
    sender
        .request(
            "SEND",
            &[("destination", &dest), ("x-esc", r"a\cb\\c\nd")],
            "",
        )
        .await?;
    let m = sub.expect_message().await?;
    header_is(&m, "x-esc", "a:b\\c\nd")?;
    sender.disconnect().await?;
    sub.disconnect().await
}

async fn utf8_values(ctx: Ctx) -> Result<()> {
    let value = "héllo wörld ☃ 日本語 🦀";
    let m = roundtrip(
        &ctx,
        Version::V1_2,
        &[("x-utf8", value)],
        "ünïcödé body".as_bytes(),
    )
    .await?;
    header_is(&m, "x-utf8", value)?;
    ensure!(body(&m) == "ünïcödé body", "body {:?}", body(&m));
    Ok(())
}

async fn no_unescaping_10(ctx: Ctx) -> Result<()> {
    let m = roundtrip(&ctx, Version::V1_0, &[("x-raw", r"a\tb\\c")], b"").await?;
    header_is(&m, "x-raw", r"a\tb\\c")
}

async fn repeated_header(ctx: Ctx) -> Result<()> {
    let m = roundtrip(
        &ctx,
        Version::V1_2,
        &[("x-rep", "first"), ("x-rep", "second"), ("x-rep", "third")],
        b"",
    )
    .await?;
    header_is(&m, "x-rep", "first")
}

async fn message_id_not_forgeable(ctx: Ctx) -> Result<()> {
    let dest = ctx.topic("forge");
    let forged = ctx.unique("forged");
    let mut sub = ctx.connect12().await?;
    sub.subscribe(&dest, "s", "auto").await?;
    let mut sender = ctx.connect12().await?;
    for (i, body) in ["one", "two"].into_iter().enumerate() {
        let receipt = format!("forge-{i}");
        sender
            .send(frame(
                "SEND",
                &[
                    ("destination", &dest),
                    ("message-id", &forged),
                    ("receipt", &receipt),
                ],
                body,
            ))
            .await?;
        let reply = sender.recv().await?;
        match reply.command {
            // Refusing a client-supplied message-id also keeps it unforged.
            Command::Error => return Ok(()),
            Command::Receipt if reply.get("receipt-id") == Some(receipt.as_str()) => {}
            _ => anyhow::bail!(
                "expected RECEIPT {receipt:?} or ERROR, got {}",
                describe(&reply)
            ),
        }
    }
    let msgs = sub.expect_messages(2).await?;
    let ids: Vec<&str> = msgs
        .iter()
        .map(|m| m.get("message-id").unwrap_or(""))
        .collect();
    ensure!(
        ids.iter().all(|id| *id != forged),
        "the client's message-id {forged:?} was delivered as the MESSAGE's message-id"
    );
    ensure!(
        ids[0] != ids[1] && !ids[0].is_empty(),
        "two messages got message-ids {ids:?}, which must be unique"
    );
    sender.disconnect().await?;
    sub.disconnect().await
}
