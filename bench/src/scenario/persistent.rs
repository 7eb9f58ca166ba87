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

use super::common::{
    close_producer, connect_consumers, open_producers, producer_receipt, split, Consumers,
    Delivery, DeliveryCheck, FirstProblem, ProducerReceipt, Sent,
};
use super::{Ctx, Progress};
use crate::body::SendTemplate;
use crate::check::Mark;
use crate::conn::{FrameReader, FrameWriter, OutBatch, TransportKind};
use crate::report::{LatencyStats, PersistentReport, Report};
use anyhow::{anyhow, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What a consumer saw, beyond the deliveries it ACKed.
#[derive(Debug, Default)]
struct Checks {
    /// First deliveries.
    distinct: u64,
    flagged_duplicates: u64,
    unflagged_duplicates: u64,
    out_of_range: u64,
    backwards: u64,
    redelivered: u64,
    first_problem: FirstProblem,
}

impl DeliveryCheck for Checks {
    /// At least once (over all consumers), repeats flagged `redelivered`;
    /// first deliveries in order (per producer).
    fn observe(&mut self, d: Delivery, last: &mut Option<u64>) {
        let (p, seq) = (d.producer, d.seq);
        if d.redelivered {
            self.redelivered += 1;
        }
        match d.mark {
            Mark::New => {
                self.distinct += 1;
                // Order holds for first deliveries; a redelivery may come
                // back out of order.
                if let (Some(prev), false) = (*last, d.redelivered) {
                    if seq <= prev {
                        self.backwards += 1;
                        self.first_problem
                            .note(|| format!("producer {p}: seq {seq} arrived after seq {prev}"));
                    }
                }
                *last = Some(seq);
            }
            Mark::Duplicate if d.redelivered => self.flagged_duplicates += 1,
            Mark::Duplicate => {
                self.unflagged_duplicates += 1;
                self.first_problem.note(|| {
                    format!("producer {p} seq {seq} delivered again without redelivered:true")
                });
            }
            Mark::OutOfRange => {
                self.out_of_range += 1;
                self.first_problem
                    .note(|| format!("producer {p} seq {seq} was never sent"));
            }
        }
    }

    /// Progress is first deliveries.
    fn progress(&self, _acked: u64) -> u64 {
        self.distinct
    }

    fn merge(&mut self, other: Self) {
        self.distinct += other.distinct;
        self.flagged_duplicates += other.flagged_duplicates;
        self.unflagged_duplicates += other.unflagged_duplicates;
        self.out_of_range += other.out_of_range;
        self.backwards += other.backwards;
        self.redelivered += other.redelivered;
        self.first_problem.merge(other.first_problem);
    }
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
            let seq = match producer_receipt(v)? {
                ProducerReceipt::Seq(seq) => seq,
                ProducerReceipt::Bye => {
                    bye = true;
                    return Ok(());
                }
            };
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
        let by_receipts = progress.count(self.slot).saturating_add(self.window);
        let by_consumers =
            (progress.sum_of(self.consumers.clone()) / self.producers).saturating_add(self.share);
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
    let (np, nc) = (s.persistent_producers, s.persistent_consumers);
    let per_producer = split(s.persistent_messages, np);

    let consumers = connect_consumers(ctx, transport, &dest, nc).await?;
    let producers = open_producers(ctx, transport, np).await?;

    // Slots 0..nc: first deliveries per consumer; nc..nc+np: RECEIPTs per
    // producer.
    let progress = Arc::new(Progress::new(nc + np));
    let consumers = Consumers::<Checks>::spawn(ctx, consumers, &per_producer, &progress);

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
            let wait = ctx.drain() + Duration::from_secs_f64(ctx.settings.max_secs);
            let confirmed = close_producer(&mut writer, reader, wait).await;
            (p, produced, confirmed)
        });
    }
    let mut sent = Sent::new(np);
    let mut receipts = 0u64;
    let mut latencies = Vec::new();
    let mut last_receipt_ns = start_ns;
    while let Some(joined) = prod_tasks.join_next().await {
        match joined {
            Ok((p, (n, time_bounded, stalled), confirmed)) => {
                sent.record(&mut report, p, n, time_bounded, stalled);
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
    let done = consumers
        .finish(ctx, &progress, cpu, &sent, &mut report)
        .await;
    let totals = &done.totals.checks;
    if totals.unflagged_duplicates + totals.out_of_range + totals.backwards > 0 {
        report.problem(format!(
            "{} unflagged duplicate(s), {} unknown, {} out of order; first: {}",
            totals.unflagged_duplicates,
            totals.out_of_range,
            totals.backwards,
            totals.first_problem.text()
        ));
    }
    if totals.redelivered > 0 {
        report.notes.push(format!(
            "{} deliveries flagged redelivered ({} of them duplicates)",
            totals.redelivered, totals.flagged_duplicates
        ));
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
         client-individual); acked per consumer: {:?}",
        s.persistent_window, s.prefetch, done.per_consumer
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
    // Only first deliveries count.
    done.fill_report(&mut report, &sent, start_ns, totals.distinct);
    Ok(report)
}
