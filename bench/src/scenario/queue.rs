//! `queue-competing`: P producers send N messages (in total) to one queue;
//! C competing consumers, each on its own connection with
//! `ack:client-individual` and a `prefetch-count`, ACK every message
//! (`id` = the MESSAGE's `ack` header). The ACKs for all frames of one read
//! are written together.
//!
//! Checks: across all consumers every message is consumed exactly once
//! (a shared bit set per producer), each consumer sees each producer's
//! messages in increasing order, and nothing arrives `redelivered`.
//!
//! The clock runs from the first SEND to the RECEIPT of each consumer's
//! final DISCONNECT, which the broker sends after it has processed every
//! ACK before it: the rate is acknowledged messages per second.

use super::{Ctx, Progress};
use crate::body::{parse_stamp, SendTemplate};
use crate::check::{Mark, OnceSet};
use crate::conn::{disconnect, open, subscribe_all, Conn, OutBatch, SubSpec, TransportKind};
use crate::report::Report;
use crate::scan::{Cmd, FrameView};
use crate::scenario::topic::{produce, producer_reader, Limit};
use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What one consumer saw.
#[derive(Debug, Default)]
struct Consumed {
    acked: u64,
    duplicates: u64,
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
    #[inline]
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
        match set.mark(st.seq) {
            Mark::New => {}
            Mark::Duplicate => {
                self.seen.duplicates += 1;
                self.seen
                    .note(|| format!("producer {p} seq {} consumed twice", st.seq));
            }
            Mark::OutOfRange => {
                self.seen.out_of_range += 1;
                self.seen
                    .note(|| format!("producer {p} seq {} was never sent", st.seq));
            }
        }
        if let Some(last) = self.last.get_mut(p) {
            if let Some(prev) = *last {
                if st.seq <= prev {
                    self.seen.backwards += 1;
                    self.seen
                        .note(|| format!("producer {p}: seq {} arrived after seq {prev}", st.seq));
                }
            }
            *last = Some(st.seq);
        }
        if v.redelivered {
            self.seen.redelivered += 1;
            self.seen
                .note(|| format!("producer {p} seq {} was redelivered", st.seq));
        }
        self.acks.bytes.extend_from_slice(b"ACK\nid:");
        self.acks.bytes.extend_from_slice(v.ack);
        self.acks.bytes.extend_from_slice(b"\n\n\0");
        self.acks.end_frame();
        self.seen.acked += 1;
        Ok(())
    }
}

/// One consumer: check, ACK, publish progress; on stop, DISCONNECT.
async fn consumer(
    mut conn: Conn,
    idx: usize,
    mut state: ConsumerState,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    base: std::time::Instant,
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
            progress.advance(idx, state.seen.acked, base.elapsed().as_nanos() as u64);
        }
    };
    if let Err(e) = result {
        progress.fail(format!("consumer {idx}: {e:#}"));
        return Err(e);
    }
    // Anything arriving now is extra; it is checked (and counted) too, and
    // ACKed with the DISCONNECT so it is not redelivered elsewhere.
    disconnect(&mut conn, drain, |v| state.on_message(v)).await?;
    Ok(state.seen)
}

/// Runs the queue scenario.
pub async fn run(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("queue-competing", transport.as_str());
    let dest = ctx.destination("queue", "competing", transport);
    let opts = ctx.conn_opts();
    let (np, nc) = (s.producers, s.consumers);
    let per_producer: Vec<u64> = (0..np as u64)
        .map(|p| s.queue_messages / np as u64 + u64::from(p < s.queue_messages % np as u64))
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

    let progress = Arc::new(Progress::new(nc));
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

    // The window is shared: all producers together stay at most
    // `queue_window` messages ahead of what the consumers received.
    let window_share = (s.queue_window / np as u64).max(1);
    let cpu = ctx.cpu_mark();
    let start_ns = ctx.now_ns();
    let mut prod_tasks = JoinSet::new();
    for (p, conn) in producers.into_iter().enumerate() {
        let ctx = ctx.clone();
        let progress = Arc::clone(&progress);
        let n = per_producer.get(p).copied().unwrap_or(0);
        let template = SendTemplate::new(&dest, p as u32, s.body_size, false);
        prod_tasks.spawn(async move {
            let mut writer = conn.writer;
            let reader = tokio::spawn(producer_reader(conn.reader, Arc::clone(&progress)));
            // Each producer owns an equal share of the window, measured
            // against the consumers' combined progress.
            let limit = Limit::Shared {
                producers: np as u64,
                share: window_share,
            };
            let produced = produce(&ctx, &mut writer, &template, None, n, limit, &progress).await;
            let mut bye = OutBatch::with_capacity(64);
            bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
            let closed = match writer.send(&mut bye).await {
                Ok(()) => match tokio::time::timeout(ctx.drain(), reader).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(anyhow!("producer reader task: {e}")),
                    Err(_) => Err(anyhow!("producer DISCONNECT got no RECEIPT")),
                },
                Err(e) => {
                    reader.abort();
                    Err(e)
                }
            };
            (p, produced, closed)
        });
    }
    let mut sent = 0u64;
    let mut sent_per = vec![0u64; np];
    while let Some(joined) = prod_tasks.join_next().await {
        match joined {
            Ok((p, produced, closed)) => {
                match produced {
                    Ok(pr) => {
                        sent += pr.sent;
                        if let Some(slot) = sent_per.get_mut(p) {
                            *slot = pr.sent;
                        }
                        if let Some(t) = pr.time_bounded {
                            report.notes.push(format!("producer {p}: {t}"));
                        }
                        if let Some(st) = pr.stalled {
                            report.problem(format!("producer {p}: {st}"));
                        }
                    }
                    Err(e) => report.problem(format!("producer {p}: {e:#}")),
                }
                if let Err(e) = closed {
                    report.problem(format!("producer {p}: {e:#}"));
                }
            }
            Err(e) => report.problem(format!("producer task: {e}")),
        }
    }
    let drained = progress
        .wait_until(ctx.drain(), || progress.sum() >= sent)
        .await;
    let _ = stop_tx.send(true);
    let mut acked = 0u64;
    let mut totals = Consumed::default();
    let mut per_consumer = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(c)) => {
                acked += c.acked;
                per_consumer.push(c.acked);
                totals.duplicates += c.duplicates;
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
    if totals.duplicates + totals.out_of_range + totals.backwards + totals.redelivered > 0 {
        report.problem(format!(
            "{} duplicate(s), {} unknown, {} out of order, {} redelivered; first: {}",
            totals.duplicates,
            totals.out_of_range,
            totals.backwards,
            totals.redelivered,
            totals.first_problem.unwrap_or_default()
        ));
    }
    if sent == 0 {
        report.problem("nothing was sent");
    }
    report.notes.push(format!(
        "{np} producer(s), {nc} consumers (prefetch {}, client-individual); acked per consumer: {per_consumer:?}",
        s.prefetch
    ));
    let elapsed = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    report.metric = "acked msgs/s".into();
    report.unit = "msgs/s".into();
    report.messages_sent = sent;
    report.deliveries = acked;
    report.subscribers = nc as u64;
    report.connections = (np + nc) as u64;
    report.elapsed_secs = elapsed;
    if elapsed > 0.0 {
        report.publish_rate = sent as f64 / elapsed;
        report.delivery_rate = acked as f64 / elapsed;
    }
    report.value = report.delivery_rate;
    Ok(report)
}
