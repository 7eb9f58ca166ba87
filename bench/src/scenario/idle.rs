//! `idle-connections`: open many WebSocket connections, each doing the
//! WebSocket handshake, CONNECT (→ CONNECTED) and one SUBSCRIBE (→ RECEIPT),
//! with a bounded number of attempts in flight; measure the time to have
//! them all, and the broker's RSS before and after (`VmRSS`). Then one
//! message is published to the topic they all subscribed to, and each
//! connection must receive it: the connections are alive, not just open.

use super::Ctx;
use crate::body::{parse_stamp, SendTemplate};
use crate::conn::{
    disconnect, open, ws_connect, Endpoints, OutBatch, TransportKind, WsStream, CONNECT_TEXT,
};
use crate::procfs::{listen_overflows, rss_kib};
use crate::report::{IdleReport, Report};
use crate::scan::{drain_fast, Cmd, FrameView};
use anyhow::{anyhow, bail, Context, Result};
use bytes::BytesMut;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Reads WebSocket messages until `want` accepts a frame (returns true).
async fn read_until<F>(ws: &mut WsStream, buf: &mut BytesMut, mut want: F) -> Result<()>
where
    F: FnMut(&FrameView<'_>) -> Result<bool>,
{
    loop {
        let mut done = false;
        drain_fast(buf, |v| {
            if v.command == Cmd::Error {
                bail!("broker sent ERROR: {}", v.describe());
            }
            if !done {
                done = want(v)?;
            }
            Ok(())
        })?;
        if done {
            return Ok(());
        }
        match ws.next().await {
            Some(Ok(Message::Text(t))) => buf.extend_from_slice(t.as_bytes()),
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(_))) | None => bail!("connection closed"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(anyhow!(e).context("websocket read")),
        }
    }
}

/// Opens one idle connection: handshake, CONNECT, SUBSCRIBE with receipt.
async fn open_idle(ep: Endpoints, subscribe: Utf8Bytes) -> Result<WsStream> {
    let mut ws = ws_connect(&ep, true).await?;
    let mut buf = BytesMut::new();
    ws.send(Message::Text(Utf8Bytes::from_static(CONNECT_TEXT)))
        .await
        .context("send CONNECT")?;
    read_until(&mut ws, &mut buf, |v| match v.command {
        Cmd::Connected => Ok(true),
        _ => bail!("expected CONNECTED, got {}", v.describe()),
    })
    .await?;
    ws.send(Message::Text(subscribe))
        .await
        .context("send SUBSCRIBE")?;
    read_until(&mut ws, &mut buf, |v| match v.command {
        Cmd::Receipt if v.receipt_id == b"sub" => Ok(true),
        _ => bail!("expected RECEIPT, got {}", v.describe()),
    })
    .await?;
    Ok(ws)
}

/// Runs the idle-connections scenario (always over WebSocket).
pub async fn run(ctx: &Ctx) -> Result<Report> {
    let s = &ctx.settings;
    let n = s.idle_connections;
    let mut report = Report::new("idle-connections", "ws");
    let dest = ctx.destination("topic", "idle", TransportKind::Ws);
    let subscribe: Utf8Bytes =
        format!("SUBSCRIBE\nid:0\ndestination:{dest}\nack:auto\nreceipt:sub\n\n\0").into();
    let pid = ctx.broker_pid;
    if pid.is_none() {
        report
            .notes
            .push("broker pid unknown: RSS not measured (give --broker-pid)".into());
    }
    let rss = || pid.and_then(|p| rss_kib(p).ok());
    let rss_before = rss();
    let cpu = ctx.cpu_mark();
    let overflows_before = listen_overflows();
    let t0 = Instant::now();
    let results: Vec<Result<WsStream>> = futures_util::stream::iter(0..n)
        .map(|_| open_idle(ctx.endpoints.clone(), subscribe.clone()))
        .buffer_unordered(s.connect_concurrency)
        .collect()
        .await;
    let connect_secs = t0.elapsed().as_secs_f64();
    let overflows = match (overflows_before, listen_overflows()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    report.elapsed_secs = connect_secs;
    cpu.finish(ctx, &mut report);
    let mut conns = Vec::with_capacity(n);
    let mut failures = 0usize;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(ws) => conns.push(ws),
            Err(e) => {
                failures += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if failures > 0 {
        report.problem(format!(
            "{failures} of {n} connections failed; first: {}",
            first_error.unwrap_or_default()
        ));
    }
    tokio::time::sleep(Duration::from_millis(s.settle_ms)).await;
    let rss_after = rss();

    // Liveness: one message to the topic; every connection must get it.
    let mut producer = open(&ctx.endpoints, TransportKind::Tcp, &ctx.conn_opts()).await?;
    let mut out = OutBatch::with_capacity(256);
    SendTemplate::new(&dest, 0, s.body_size, false).encode(0, 0, 0, &mut out.bytes);
    out.end_frame();
    producer.writer.send(&mut out).await?;
    let wait = ctx.drain();
    let live = conns
        .iter_mut()
        .map(|ws| async move {
            let mut buf = BytesMut::new();
            let got = read_until(ws, &mut buf, |v| match v.command {
                Cmd::Message => Ok(parse_stamp(v.body)?.seq == 0),
                _ => bail!("unexpected frame: {}", v.describe()),
            });
            matches!(tokio::time::timeout(wait, got).await, Ok(Ok(())))
        })
        .collect::<FuturesUnordered<_>>()
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    if live < conns.len() {
        report.problem(format!(
            "{} of {} open connections did not receive the liveness message",
            conns.len() - live,
            conns.len()
        ));
    }
    if let Err(e) = disconnect(&mut producer, wait, |v| {
        bail!("unexpected frame on the producer: {}", v.describe())
    })
    .await
    {
        report.problem(format!("producer: {e:#}"));
    }
    let opened = conns.len();
    drop(conns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after_close = rss();

    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if opened > 0 => Some((a as f64 - b as f64) / opened as f64),
        _ => None,
    };
    report.metric = "broker RSS per connection".into();
    report.unit = "KiB".into();
    report.value = per_conn.unwrap_or(0.0);
    report.connections = opened as u64;
    report.subscribers = opened as u64;
    report.messages_sent = 1;
    report.deliveries = live as u64;
    report.notes.push(format!(
        "{} attempts in flight; {:.0} connections/s; RSS {} → {} KiB, {} KiB 1 s after closing",
        s.connect_concurrency,
        opened as f64 / connect_secs.max(1e-9),
        fmt_opt(rss_before),
        fmt_opt(rss_after),
        fmt_opt(rss_after_close)
    ));
    report.idle = Some(IdleReport {
        connections: opened as u64,
        connect_secs,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        rss_per_connection_kib: per_conn,
        rss_after_close_kib: rss_after_close,
        live_connections: live as u64,
        listen_overflows: overflows,
    });
    if let Some(o) = overflows.filter(|&o| o > 0) {
        report.notes.push(format!(
            "the kernel counted {o} listen-queue overflow(s) while connecting (each costs the \
             client a SYN retransmit, 1 s or more; the count is system-wide)"
        ));
    }
    Ok(report)
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |v| v.to_string())
}
