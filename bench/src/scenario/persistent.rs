//! `persistent-queue`: P producers send N messages (in total) to one queue
//! with `persistent:true` and a `receipt` on every SEND; the broker answers
//! each RECEIPT only once the message is durable in its store. Each
//! producer keeps at most `--persistent-window` SENDs unconfirmed (they are
//! pipelined, not sent one by one), and all producers together stay at most
//! `--queue-window` messages ahead of the consumers. C competing consumers
//! with `ack:client-individual` and a `prefetch-count` ACK every message
//! (which deletes it from the store).
//!
//! Checks: every SEND gets its RECEIPT; every message is consumed at least
//! once, and a message consumed again must carry `redelivered:true`
//! (exactly once, or flagged); nothing unknown arrives; each consumer sees
//! each producer's first deliveries in increasing order.
//!
//! The clock runs from the first SEND to the RECEIPT of each consumer's
//! final DISCONNECT: the rate is acknowledged messages per second. The
//! report also gives the rate of confirmed SENDs and the latency from
//! writing a SEND to reading its RECEIPT.

use super::{Ctx, Progress};
use crate::body::{parse_receipt_seq, parse_stamp, SendTemplate};
use crate::check::{Mark, OnceSet};
use crate::conn::{
    disconnect, open, subscribe_all, Conn, FrameReader, FrameWriter, OutBatch, SubSpec,
    TransportKind,
};
use crate::report::{LatencyStats, PersistentReport, Report};
use crate::scan::{Cmd, FrameView};
use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What one consumer saw.
#[derive(Debug, Default)]
struct Consumed {
    /// Deliveries ACKed (duplicates included).
    acked: u64,
    /// First deliveries.
    distinct: u64,
    flagged_duplicates: u64,
    unflagged_duplicates: u64,
    out_of_range: u64,
    backwards: u64,
    redelivered: u64,
    first_problem: Option<String>,
}

impl Consumed {
    fn note(&mut self, p: impl FnOnce() -> String) {
        if self.first_problem.is_none() {
            self.first_problem = Some(p());
        }
    }
}

/// Per-consumer state while running.
struct ConsumerState {
    sets: Arc<Vec<OnceSet>>,
    last: Vec<Option<u64>>,
    acks: OutBatch,
    seen: Consumed,
}

impl ConsumerState {
    /// Checks one MESSAGE and queues its ACK.
    fn on_message(&mut self, v: &FrameView<'_>) -> Result<()> {
        if v.command != Cmd::Message {
            bail!("unexpected frame: {}", v.describe());
        }
        if v.ack.is_empty() {
            bail!("MESSAGE without an ack header: {}", v.describe());
        }
        let st = parse_stamp(v.body)?;
        let p = st.producer as usize;
        let set = self
            .sets
            .get(p)
            .ok_or_else(|| anyhow!("MESSAGE from unknown producer {p}"))?;
        if v.redelivered {
            self.seen.redelivered += 1;
        }
        match set.mark(st.seq) {
            Mark::New => {
                self.seen.distinct += 1;
                // Order holds for first deliveries; a redelivery may come
                // back out of order.
                if let Some(last) = self.last.get_mut(p) {
                    if let (Some(prev), false) = (*last, v.redelivered) {
                        if st.seq <= prev {
                            self.seen.backwards += 1;
                            self.seen.note(|| {
                                format!("producer {p}: seq {} arrived after seq {prev}", st.seq)
                            });
                        }
                    }
                    *last = Some(st.seq);
                }
            }
            Mark::Duplicate if v.redelivered => self.seen.flagged_duplicates += 1,
            Mark::Duplicate => {
                self.seen.unflagged_duplicates += 1;
                self.seen.note(|| {
                    format!(
                        "producer {p} seq {} delivered again without redelivered:true",
                        st.seq
                    )
                });
            }
            Mark::OutOfRange => {
                self.seen.out_of_range += 1;
                self.seen
                    .note(|| format!("producer {p} seq {} was never sent", st.seq));
            }
        }
        self.acks.bytes.extend_from_slice(b"ACK\nid:");
        self.acks.bytes.extend_from_slice(v.ack);
        self.acks.bytes.extend_from_slice(b"\n\n\0");
        self.acks.end_frame();
        self.seen.acked += 1;
        Ok(())
    }
}

/// One consumer: check, ACK, publish progress (first deliveries); on
/// stop, DISCONNECT.
async fn consumer(
    mut conn: Conn,
    idx: usize,
    mut state: ConsumerState,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    base: Instant,
    drain: Duration,
) -> Result<Consumed> {
    let result: Result<()> = loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break Ok(()),
            r = conn.reader.fill() => match r {
                Ok(true) => {}
                Ok(false) => break Err(anyhow!("broker closed the connection")),
                Err(e) => break Err(e),
            },
        }
        if let Err(e) = conn.reader.drain(|v| state.on_message(v)) {
            break Err(e);
        }
        if !state.acks.is_empty() {
            if let Err(e) = conn.writer.send(&mut state.acks).await {
                break Err(e);
            }
            progress.advance(idx, state.seen.distinct, base.elapsed().as_nanos() as u64);
        }
    };
    if let Err(e) = result {
        progress.fail(format!("consumer {idx}: {e:#}"));
        return Err(e);
    }
    // Whatever arrives now is checked too, and ACKed with the DISCONNECT.
    disconnect(&mut conn, drain, |v| state.on_message(v)).await?;
    Ok(state.seen)
}

fn sum(progress: &Progress, range: Range<usize>) -> u64 {
    progress
        .counts
        .get(range)
        .map(|c| c.iter().map(|v| v.load(Ordering::Acquire)).sum())
        .unwrap_or(0)
}

fn count(progress: &Progress, i: usize) -> u64 {
    progress
        .counts
        .get(i)
        .map(|c| c.load(Ordering::Acquire))
        .unwrap_or(0)
}

/// What one producer's reader saw.
#[derive(Debug, Default)]
struct Confirmed {
    receipts: u64,
    /// SEND write → RECEIPT read, ns.
    latencies: Vec<u64>,
    /// ns (clock base) of the last RECEIPT for a SEND.
    last_ns: u64,
}

/// Reads one producer connection: a RECEIPT per SEND (counted, timed
/// against the SEND's write time) until the DISCONNECT's RECEIPT `bye`.
async fn producer_reader(
    mut reader: FrameReader,
    slot: usize,
    sent_ns: Arc<Vec<AtomicU64>>,
    progress: Arc<Progress>,
    base: Instant,
) -> Result<Confirmed> {
    let mut c = Confirmed::default();
    loop {
        let mut bye = false;
        let now = base.elapsed().as_nanos() as u64;
        let before = c.receipts;
        let drained = reader.drain(|v| {
            if v.command != Cmd::Receipt {
                bail!(
                    "unexpected frame on a producer connection: {}",
                    v.describe()
                );
            }
            if v.receipt_id == b"bye" {
                bye = true;
                return Ok(());
            }
            let seq = parse_receipt_seq(v.receipt_id)
                .ok_or_else(|| anyhow!("unknown receipt-id: {}", v.describe()))?;
            let at = sent_ns
                .get(seq as usize)
                .ok_or_else(|| anyhow!("RECEIPT for seq {seq}, which was never sent"))?
                .load(Ordering::Acquire);
            c.latencies.push(now.saturating_sub(at));
            c.receipts += 1;
            c.last_ns = now;
            Ok(())
        });
        if let Err(e) = drained {
            progress.fail(format!("producer connection: {e:#}"));
            return Err(e);
        }
        if c.receipts != before {
            progress.advance(slot, c.receipts, now);
        }
        if bye {
            return Ok(c);
        }
        match reader.fill().await {
            Ok(true) => {}
            Ok(false) => {
                let e = anyhow!("broker closed the producer connection");
                progress.fail(format!("{e:#}"));
                return Err(e);
            }
            Err(e) => {
                progress.fail(format!("producer connection: {e:#}"));
                return Err(e);
            }
        }
    }
}

/// Where a producer stands against its limits.
struct Limits {
    /// The producer's progress slot (its receipt count).
    slot: usize,
    /// Consumer slots.
    consumers: Range<usize>,
    producers: u64,
    window: u64,
    share: u64,
}

impl Limits {
    /// How many messages this producer may have sent in total right now.
    fn allowed(&self, progress: &Progress) -> u64 {
        let by_receipts = count(progress, self.slot).saturating_add(self.window);
        let by_consumers =
            (sum(progress, self.consumers.clone()) / self.producers).saturating_add(self.share);
        by_receipts.min(by_consumers)
    }
}

/// Sends up to `n` persistent messages within the limits. Returns the
/// number sent and why it stopped early, if it did.
async fn produce(
    ctx: &Ctx,
    writer: &mut FrameWriter,
    template: &SendTemplate,
    n: u64,
    limits: &Limits,
    progress: &Progress,
    sent_ns: &[AtomicU64],
) -> (u64, Option<String>, Option<String>) {
    let s = &ctx.settings;
    let batch = s.batch as u64;
    let mut out = OutBatch::with_capacity(s.batch * (template.len() + 32));
    let deadline = Instant::now() + Duration::from_secs_f64(s.max_secs);
    let min_chunk = batch.min(limits.window.min(limits.share) / 2).max(1);
    let mut sent = 0u64;
    while sent < n {
        if progress.failed() {
            return (
                sent,
                None,
                Some(format!("stopped after {sent}: a connection failed")),
            );
        }
        if Instant::now() >= deadline {
            let why = format!(
                "time bound of {} s reached: sent {sent} of {n} messages",
                s.max_secs
            );
            return (sent, Some(why), None);
        }
        let need = min_chunk.min(n - sent);
        let allowed = limits.allowed(progress);
        if allowed.saturating_sub(sent) < need {
            if let Err(e) = progress
                .wait_until(ctx.drain(), || {
                    limits.allowed(progress).saturating_sub(sent) >= need
                })
                .await
            {
                return (
                    sent,
                    None,
                    Some(format!("stalled after {sent} messages: {e}")),
                );
            }
            continue;
        }
        let k = batch.min(allowed - sent).min(n - sent);
        let now = ctx.now_ns();
        for seq in sent..sent + k {
            if let Some(t) = sent_ns.get(seq as usize) {
                t.store(now, Ordering::Release);
            }
            template.encode(seq, 0, 0, &mut out.bytes);
            out.end_frame();
        }
        if let Err(e) = writer.send(&mut out).await {
            return (sent, None, Some(format!("after {sent} messages: {e:#}")));
        }
        sent += k;
    }
    (sent, None, None)
}

/// Runs the persistent queue scenario.
pub async fn run(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("persistent-queue", transport.as_str());
    let dest = ctx.destination("queue", "persistent", transport);
    let opts = ctx.conn_opts();
    let (np, nc) = (s.persistent_producers, s.persistent_consumers);
    let total = s.persistent_messages;
    let per_producer: Vec<u64> = (0..np as u64)
        .map(|p| total / np as u64 + u64::from(p < total % np as u64))
        .collect();
    let sets: Arc<Vec<OnceSet>> = Arc::new(per_producer.iter().map(|&n| OnceSet::new(n)).collect());

    let consumers: Vec<Conn> = futures_util::stream::iter(0..nc)
        .map(|_| {
            let (ep, dest) = (ctx.endpoints.clone(), dest.clone());
            async move {
                let mut conn = open(&ep, transport, &opts).await?;
                subscribe_all(
                    &mut conn,
                    &[SubSpec {
                        id: "q".into(),
                        destination: dest,
                        ack: "client-individual",
                        prefetch: Some(s.prefetch),
                    }],
                )
                .await?;
                Ok::<_, anyhow::Error>(conn)
            }
        })
        .buffered(16)
        .try_collect()
        .await?;
    let mut producers = Vec::with_capacity(np);
    for _ in 0..np {
        producers.push(open(&ctx.endpoints, transport, &opts).await?);
    }

    // Slots 0..nc: first deliveries per consumer; nc..nc+np: RECEIPTs per
    // producer.
    let progress = Arc::new(Progress::new(nc + np));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (idx, conn) in consumers.into_iter().enumerate() {
        let state = ConsumerState {
            sets: Arc::clone(&sets),
            last: vec![None; np],
            acks: OutBatch::with_capacity(64 * 1024),
            seen: Consumed::default(),
        };
        tasks.spawn(consumer(
            conn,
            idx,
            state,
            Arc::clone(&progress),
            stop_rx.clone(),
            ctx.base,
            ctx.drain(),
        ));
    }

    let share = (s.queue_window / np as u64).max(1);
    let cpu = ctx.cpu_mark();
    let start_ns = ctx.now_ns();
    let mut prod_tasks = JoinSet::new();
    for (p, conn) in producers.into_iter().enumerate() {
        let ctx = ctx.clone();
        let progress = Arc::clone(&progress);
        let n = per_producer.get(p).copied().unwrap_or(0);
        let template = SendTemplate::with_headers(
            &dest,
            p as u32,
            s.body_size,
            true,
            &[("persistent", "true")],
        );
        let limits = Limits {
            slot: nc + p,
            consumers: 0..nc,
            producers: np as u64,
            window: s.persistent_window,
            share,
        };
        prod_tasks.spawn(async move {
            let sent_ns: Arc<Vec<AtomicU64>> =
                Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
            let mut writer = conn.writer;
            let reader = tokio::spawn(producer_reader(
                conn.reader,
                nc + p,
                Arc::clone(&sent_ns),
                Arc::clone(&progress),
                ctx.base,
            ));
            let produced = produce(
                &ctx,
                &mut writer,
                &template,
                n,
                &limits,
                &progress,
                &sent_ns,
            )
            .await;
            // The DISCONNECT's RECEIPT comes after those of every SEND
            // before it; wait for the broker's confirmations (bounded).
            let mut bye = OutBatch::with_capacity(64);
            bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
            let wait = ctx.drain() + Duration::from_secs_f64(ctx.settings.max_secs);
            let confirmed = match writer.send(&mut bye).await {
                Ok(()) => match tokio::time::timeout(wait, reader).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(anyhow!("producer reader task: {e}")),
                    Err(_) => Err(anyhow!("producer DISCONNECT got no RECEIPT")),
                },
                Err(e) => {
                    reader.abort();
                    Err(e)
                }
            };
            (p, produced, confirmed)
        });
    }
    let mut sent = 0u64;
    let mut sent_per = vec![0u64; np];
    let mut receipts = 0u64;
    let mut latencies = Vec::new();
    let mut last_receipt_ns = start_ns;
    while let Some(joined) = prod_tasks.join_next().await {
        match joined {
            Ok((p, (n, time_bounded, stalled), confirmed)) => {
                sent += n;
                if let Some(slot) = sent_per.get_mut(p) {
                    *slot = n;
                }
                if let Some(t) = time_bounded {
                    report.notes.push(format!("producer {p}: {t}"));
                }
                if let Some(st) = stalled {
                    report.problem(format!("producer {p}: {st}"));
                }
                match confirmed {
                    Ok(c) => {
                        if c.receipts != n {
                            report.problem(format!(
                                "producer {p}: {} of {n} SENDs got a RECEIPT before the \
                                 DISCONNECT's",
                                c.receipts
                            ));
                        }
                        receipts += c.receipts;
                        latencies.extend(c.latencies);
                        last_receipt_ns = last_receipt_ns.max(c.last_ns);
                    }
                    Err(e) => report.problem(format!("producer {p}: {e:#}")),
                }
            }
            Err(e) => report.problem(format!("producer task: {e}")),
        }
    }
    let drained = progress
        .wait_until(ctx.drain(), || sum(&progress, 0..nc) >= sent)
        .await;
    let _ = stop_tx.send(true);
    let mut totals = Consumed::default();
    let mut per_consumer = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(c)) => {
                totals.acked += c.acked;
                totals.distinct += c.distinct;
                per_consumer.push(c.acked);
                totals.flagged_duplicates += c.flagged_duplicates;
                totals.unflagged_duplicates += c.unflagged_duplicates;
                totals.out_of_range += c.out_of_range;
                totals.backwards += c.backwards;
                totals.redelivered += c.redelivered;
                if let Some(p) = c.first_problem {
                    totals.note(|| p);
                }
            }
            Ok(Err(e)) => report.problem(format!("consumer: {e:#}")),
            Err(e) => report.problem(format!("consumer task: {e}")),
        }
    }
    // Every consumer's DISCONNECT receipt is in: all ACKs were processed.
    let end_ns = ctx.now_ns();
    cpu.finish(ctx, &mut report);

    for e in progress.take_errors() {
        if !report.problems.contains(&e) {
            report.problem(e);
        }
    }
    if let Err(e) = drained {
        report.problem(format!(
            "consumers did not receive all {sent} messages: {e}"
        ));
    }
    for (p, set) in sets.iter().enumerate() {
        let n = sent_per.get(p).copied().unwrap_or(0);
        let (missing, first) = set.missing_below(n);
        if missing > 0 {
            report.problem(format!(
                "producer {p}: {missing} of {n} messages never consumed (first: seq {})",
                first.unwrap_or(0)
            ));
        }
    }
    if totals.unflagged_duplicates + totals.out_of_range + totals.backwards > 0 {
        report.problem(format!(
            "{} unflagged duplicate(s), {} unknown, {} out of order; first: {}",
            totals.unflagged_duplicates,
            totals.out_of_range,
            totals.backwards,
            totals.first_problem.clone().unwrap_or_default()
        ));
    }
    if totals.redelivered > 0 {
        report.notes.push(format!(
            "{} deliveries flagged redelivered ({} of them duplicates)",
            totals.redelivered, totals.flagged_duplicates
        ));
    }
    if sent == 0 {
        report.problem("nothing was sent");
    }
    let receipt_latency = LatencyStats::from_ns(&mut latencies);
    let confirm_secs = last_receipt_ns.saturating_sub(start_ns) as f64 / 1e9;
    let confirmed_rate = if confirm_secs > 0.0 {
        receipts as f64 / confirm_secs
    } else {
        0.0
    };
    report.notes.push(format!(
        "{np} producers (window {} unconfirmed SENDs each), {nc} consumers (prefetch {}, \
         client-individual); acked per consumer: {per_consumer:?}",
        s.persistent_window, s.prefetch
    ));
    report.notes.push(format!(
        "{} SENDs confirmed/s; SEND→RECEIPT p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        crate::report::fmt_num(confirmed_rate),
        receipt_latency.p50_us,
        receipt_latency.p99_us,
        receipt_latency.max_us
    ));
    report.persistent = Some(PersistentReport {
        receipts,
        receipt_latency,
        confirmed_rate,
        flagged_duplicates: totals.flagged_duplicates,
        fsync: ctx
            .broker_binary
            .as_ref()
            .map(|_| s.fsync.as_str().to_owned()),
    });
    let elapsed = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    report.metric = "acked msgs/s".into();
    report.unit = "msgs/s".into();
    report.messages_sent = sent;
    report.deliveries = totals.acked;
    report.subscribers = nc as u64;
    report.connections = (np + nc) as u64;
    report.elapsed_secs = elapsed;
    if elapsed > 0.0 {
        report.publish_rate = sent as f64 / elapsed;
        report.delivery_rate = totals.distinct as f64 / elapsed;
    }
    report.value = report.delivery_rate;
    Ok(report)
}
