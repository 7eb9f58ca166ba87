//! `recovery`: how long a broker takes to come back with a full store.
//!
//! 1. Start the broker (`--start-broker`) on a fresh data directory, with
//!    `[queues] max_length` raised above N and the `--fsync` policy.
//! 2. Fill one queue with N persistent messages (`persistent:true`) from
//!    one pipelined producer. Only every `--receipt-every`-th SEND asks for
//!    a RECEIPT (at most `--receipts-in-flight` outstanding), and so does
//!    the last one: the broker confirms a persistent SEND once the store
//!    has synced everything written before it, so the last RECEIPT means
//!    all N are durable.
//! 3. Stop the broker with SIGTERM (timed) and start it again on the same
//!    data directory. Measured from spawning the process: until the TCP
//!    port accepts connections (the result) and until the broker's
//!    `store recovered messages=N elapsed_ms=M` log line appears (M is the
//!    broker's own time for reading the store and rebuilding the queues).
//! 4. A consumer reads the first `--recovery-verify` messages: they must
//!    be the first ones sent, in order; it ACKs them.

use super::topic::producer_reader;
use super::{Ctx, Progress};
use crate::body::{parse_stamp, SendTemplate};
use crate::broker::{dir_bytes, store_config, BrokerOpts, ManagedBroker, ScratchDir};
use crate::conn::{disconnect, open, Endpoints, OutBatch, TransportKind};
use crate::procfs;
use crate::report::{fmt_num, RecoveryReport, Report};
use crate::scan::Cmd;
use anyhow::{anyhow, bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The broker's log line after recovery.
const RECOVERED_LINE: &str = "store recovered";

/// `key=<digits>` in a log line.
fn field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `(messages, elapsed_ms)` of the recovery line in `log`.
pub fn parse_recovered(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains(RECOVERED_LINE))?;
    Some((field(line, "messages")?, field(line, "elapsed_ms")?))
}

/// Starts a broker off the async runtime (the wait polls and sleeps).
pub(crate) async fn start(
    binary: PathBuf,
    run_id: String,
    opts: BrokerOpts,
) -> Result<ManagedBroker> {
    tokio::task::spawn_blocking(move || ManagedBroker::start_with(&binary, &run_id, &opts))
        .await
        .map_err(|e| anyhow!("broker start task: {e}"))?
}

/// SIGTERM and wait; returns the broker, whether it exited in time, and
/// how long it took.
pub(crate) async fn stop(mut broker: ManagedBroker) -> Result<(ManagedBroker, bool, Duration)> {
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let clean = broker.terminate()?;
        Ok((broker, clean, t.elapsed()))
    })
    .await
    .map_err(|e| anyhow!("broker stop task: {e}"))?
}

/// Fills `dest` with `n` persistent messages; returns when the last one is
/// confirmed durable.
async fn fill(ctx: &Ctx, ep: &Endpoints, dest: &str, n: u64) -> Result<()> {
    let s = &ctx.settings;
    let conn = open(ep, TransportKind::Tcp, &ctx.conn_opts()).await?;
    let headers = [("persistent", "true")];
    let plain = SendTemplate::with_headers(dest, 0, s.body_size, false, &headers);
    let confirmed = SendTemplate::with_headers(dest, 0, s.body_size, true, &headers);
    let progress = Arc::new(Progress::new(0));
    let reader = tokio::spawn(producer_reader(conn.reader, Arc::clone(&progress)));
    let mut writer = conn.writer;
    let every = s.receipt_every;
    let ahead = every.saturating_mul(s.receipts_in_flight);
    let batch = s.batch as u64;
    let mut out = OutBatch::with_capacity(s.batch * (confirmed.len() + 32));
    let mut sent = 0u64;
    let receipted = || progress.receipted.load(Ordering::Acquire);
    while sent < n {
        if receipted().saturating_add(ahead) <= sent {
            progress
                .wait_until(ctx.drain(), || receipted().saturating_add(ahead) > sent)
                .await
                .with_context(|| format!("filling: stalled after {sent} messages"))?;
            continue;
        }
        let k = batch
            .min(n - sent)
            .min(receipted().saturating_add(ahead) - sent);
        for seq in sent..sent + k {
            if (seq + 1) % every == 0 || seq + 1 == n {
                confirmed.encode(seq, 0, 0, &mut out.bytes);
            } else {
                plain.encode(seq, 0, 0, &mut out.bytes);
            }
            out.end_frame();
        }
        writer.send(&mut out).await?;
        sent += k;
    }
    progress
        .wait_until(ctx.drain(), || receipted() >= n)
        .await
        .context("filling: the last RECEIPT did not come")?;
    let mut bye = OutBatch::with_capacity(64);
    bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
    writer.send(&mut bye).await?;
    tokio::time::timeout(ctx.drain(), reader)
        .await
        .map_err(|_| anyhow!("filling: DISCONNECT got no RECEIPT"))?
        .map_err(|e| anyhow!("filling: reader task: {e}"))??;
    Ok(())
}

/// What the consumer after the restart saw.
#[derive(Debug, Default)]
struct Verified {
    count: u64,
    redelivered: u64,
    first_message: Duration,
}

/// Reads the first `k` messages of `dest`: producer 0, seq 0, 1, 2, …
async fn verify(ctx: &Ctx, ep: &Endpoints, dest: &str, k: u64, v: &mut Verified) -> Result<()> {
    let mut conn = open(ep, TransportKind::Tcp, &ctx.conn_opts()).await?;
    // The queue is full: MESSAGEs may come before the SUBSCRIBE's RECEIPT.
    let mut acks = OutBatch::with_capacity(64 * 1024);
    acks.push_frame(
        format!(
            "SUBSCRIBE\nid:r\ndestination:{dest}\nack:client-individual\nprefetch-count:{}\n\
             receipt:subscribed\n\n\0",
            ctx.settings.prefetch
        )
        .as_bytes(),
    );
    let subscribed = Instant::now();
    conn.writer.send(&mut acks).await?;
    let mut receipted = false;
    while v.count < k || !receipted {
        let filled = tokio::time::timeout(ctx.drain(), conn.reader.fill())
            .await
            .map_err(|_| {
                anyhow!(
                    "after the restart: {} of {k} messages within {:?}",
                    v.count,
                    ctx.drain()
                )
            })??;
        if !filled {
            bail!("after the restart: the broker closed the consumer connection");
        }
        conn.reader.drain(|f| {
            if f.command == Cmd::Receipt && f.receipt_id == b"subscribed" {
                receipted = true;
                return Ok(());
            }
            if f.command != Cmd::Message {
                bail!("unexpected frame: {}", f.describe());
            }
            if v.count >= k {
                // Beyond what we check: left unacknowledged.
                return Ok(());
            }
            let st = parse_stamp(f.body)?;
            if st.producer != 0 || st.seq != v.count {
                bail!(
                    "after the restart, message {} is producer {} seq {} (expected seq {})",
                    v.count,
                    st.producer,
                    st.seq,
                    v.count
                );
            }
            if v.count == 0 {
                v.first_message = subscribed.elapsed();
            }
            v.count += 1;
            v.redelivered += u64::from(f.redelivered);
            acks.bytes.extend_from_slice(b"ACK\nid:");
            acks.bytes.extend_from_slice(f.ack);
            acks.bytes.extend_from_slice(b"\n\n\0");
            acks.end_frame();
            Ok(())
        })?;
        if !acks.is_empty() {
            conn.writer.send(&mut acks).await?;
        }
    }
    disconnect(&mut conn, ctx.drain(), |f| {
        if f.command == Cmd::Message {
            Ok(())
        } else {
            bail!("unexpected frame: {}", f.describe())
        }
    })
    .await
    .context("after the restart, disconnecting the consumer")
}

/// Runs the recovery scenario.
pub async fn run(ctx: &Ctx) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("recovery", "tcp");
    report.metric = "time to listen after a restart".into();
    report.unit = "s".into();
    let Some(binary) = ctx.broker_binary.clone() else {
        report.problem("recovery restarts the broker: run it with --start-broker PATH");
        return Ok(report);
    };
    let n = s.recovery_messages;
    let scratch = ScratchDir::new("recovery", &ctx.run_id)?;
    let config_text = format!(
        "{}\n[queues]\nmax_length = {}\n",
        store_config(s.fsync.as_str(), s.fsync_interval_ms),
        n.max(100_000) + 1000
    );
    let opts = BrokerOpts {
        data_dir: Some(scratch.path().join("store")),
        config: Some(scratch.write("stompede.toml", &config_text)?),
        // The recovery line is at info level.
        log_level: "warn,stompede::broker=info".into(),
        start_timeout: Duration::from_secs(300),
        log_marker: Some(RECOVERED_LINE.into()),
        ..BrokerOpts::default()
    };
    let dest = ctx.destination("queue", "recovery", TransportKind::Tcp);

    // 1, 2: fill.
    let first = start(binary.clone(), ctx.run_id.clone(), opts.clone()).await?;
    let ep = Endpoints::parse(&first.tcp_url, &first.ws_url)?;
    let t = Instant::now();
    fill(ctx, &ep, &dest, n).await?;
    let fill_secs = t.elapsed().as_secs_f64();
    let rss_before_kib = procfs::rss_kib(first.pid).ok();

    // 3: stop, restart.
    let (first, clean, stop_time) = stop(first).await?;
    if !clean {
        report.problem(format!(
            "the broker did not exit within 10 s of SIGTERM; log tail:\n{}",
            first.log_tail()
        ));
    }
    drop(first);
    let store_bytes = dir_bytes(&scratch.path().join("store"));
    let second = start(binary, ctx.run_id.clone(), opts).await?;
    let listen = second.tcp_ready_after;
    let broker_cpu = procfs::cpu_secs(second.pid).ok();
    let rss_after_kib = procfs::rss_kib(second.pid).ok();
    let recovered_line = parse_recovered(&second.own_log());
    let line_secs = log_line_secs(listen, recovered_line.is_some(), second.marker_after);
    let ep = Endpoints::parse(&second.tcp_url, &second.ws_url)?;

    // 4: read the first messages.
    let mut verified = Verified::default();
    if let Err(e) = verify(ctx, &ep, &dest, s.recovery_verify.min(n), &mut verified).await {
        report.problem(format!("{e:#}"));
    }
    let (_, clean, _) = stop(second).await?;
    if !clean {
        report.problem("the restarted broker did not exit within 10 s of SIGTERM");
    }
    match recovered_line {
        Some((m, _)) if m != n => report.problem(format!(
            "the broker recovered {m} messages; {n} were stored"
        )),
        Some(_) => {}
        None => report.problem("no 'store recovered' line in the broker's log"),
    }

    let listen_secs = listen.as_secs_f64();
    let rec = RecoveryReport {
        messages: n,
        fill_secs,
        fill_rate: if fill_secs > 0.0 {
            n as f64 / fill_secs
        } else {
            0.0
        },
        store_bytes,
        rss_before_kib,
        stop_secs: stop_time.as_secs_f64(),
        listen_secs,
        log_line_secs: line_secs,
        recover_ms: recovered_line.map(|(_, ms)| ms),
        recovered: recovered_line.map(|(m, _)| m),
        rss_after_kib,
        first_message_ms: verified.first_message.as_secs_f64() * 1e3,
        verified: verified.count,
        verified_redelivered: verified.redelivered,
    };
    report.notes.push(format!(
        "fill: {} persistent msgs in {:.1} s ({} msgs/s, fsync {}), store {:.0} MiB, broker RSS {} MiB; \
         SIGTERM to exit {:.2} s",
        fmt_num(n as f64),
        fill_secs,
        fmt_num(rec.fill_rate),
        s.fsync.as_str(),
        store_bytes as f64 / (1024.0 * 1024.0),
        rss_before_kib.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        rec.stop_secs
    ));
    report.notes.push(format!(
        "restart: recovery log line after {} s (recover elapsed_ms={}), TCP accepting after {:.2} s, \
         broker CPU {} s, RSS {} MiB; first MESSAGE {:.1} ms after SUBSCRIBE; {} checked in order, \
         {} flagged redelivered",
        rec.log_line_secs.map_or("n/a".into(), |v| format!("{v:.2}")),
        rec.recover_ms.map_or("n/a".into(), |v| v.to_string()),
        listen_secs,
        broker_cpu.map_or("n/a".into(), |v| format!("{v:.2}")),
        rss_after_kib.map_or("n/a".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
        rec.first_message_ms,
        rec.verified,
        rec.verified_redelivered
    ));
    report.value = listen_secs;
    report.elapsed_secs = listen_secs;
    report.broker_cpu_secs = broker_cpu;
    report.broker_rss_kib = rss_after_kib;
    report.messages_sent = n;
    report.deliveries = verified.count;
    report.subscribers = 1;
    report.connections = 2;
    report.recovery = Some(rec);
    Ok(report)
}

/// When the recovery line was seen (seconds from spawn).
fn log_line_secs(
    listen: Duration,
    line_found: bool,
    marker_after: Option<Duration>,
) -> Option<f64> {
    match marker_after {
        Some(d) => Some(d.as_secs_f64()),
        // Written just before the listener opened, between two polls.
        None if line_found => Some(listen.as_secs_f64()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recovery_line_is_parsed() {
        let log = "2026-11-23T12:48:46.934663Z  INFO stompede::broker: store recovered \
                   messages=1000000 elapsed_ms=2345\nother line\n";
        assert_eq!(parse_recovered(log), Some((1_000_000, 2345)));
        assert_eq!(parse_recovered("nothing"), None);
    }
}
