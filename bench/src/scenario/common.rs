//! Pieces the scenarios share: reading until told to stop, the RECEIPTs a
//! producer connection gets, closing a producer, and the competing
//! consumers of the queue scenarios (`queue-competing`,
//! `persistent-queue`), which check and ACK every delivery.

use super::{CpuMark, Ctx, Progress};
use crate::body::{parse_receipt_seq, parse_stamp};
use crate::check::{Mark, OnceSet};
use crate::conn::{
    disconnect, open, subscribe_all, Conn, FrameReader, FrameWriter, OutBatch, SubSpec,
    TransportKind,
};
use crate::report::Report;
use crate::scan::{Cmd, FrameView};
use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Waits for more input on `reader`, or for `stop`. `Ok(true)`: bytes were
/// read; `Ok(false)`: told to stop. End of stream is an error.
pub async fn read_or_stop(
    reader: &mut FrameReader,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool> {
    tokio::select! {
        biased;
        _ = stop.changed() => Ok(false),
        r = reader.fill() => match r {
            Ok(true) => Ok(true),
            Ok(false) => Err(anyhow!("broker closed the connection")),
            Err(e) => Err(e),
        },
    }
}

/// Reads more input on `reader`; the end of the stream is an error naming
/// the `what` connection.
pub async fn fill_open(reader: &mut FrameReader, what: &str) -> Result<()> {
    match reader.fill().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(anyhow!("broker closed the {what} connection")),
        Err(e) => Err(e),
    }
}

/// A frame a producer connection may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProducerReceipt {
    /// The RECEIPT for the SEND with this sequence number.
    Seq(u64),
    /// The RECEIPT `bye` for the DISCONNECT.
    Bye,
}

/// Checks a frame on a producer connection: only RECEIPTs for SENDs and
/// for the DISCONNECT may arrive there.
pub fn producer_receipt(v: &FrameView<'_>) -> Result<ProducerReceipt> {
    if v.command != Cmd::Receipt {
        bail!(
            "unexpected frame on a producer connection: {}",
            v.describe()
        );
    }
    if v.receipt_id == b"bye" {
        return Ok(ProducerReceipt::Bye);
    }
    match parse_receipt_seq(v.receipt_id) {
        Some(seq) => Ok(ProducerReceipt::Seq(seq)),
        None => bail!("unknown receipt-id: {}", v.describe()),
    }
}

/// Sends DISCONNECT (receipt `bye`) on a producer connection and waits up
/// to `wait` for its reader task, which ends with that RECEIPT; returns
/// what the task returned.
pub async fn close_producer<T>(
    writer: &mut FrameWriter,
    reader: JoinHandle<Result<T>>,
    wait: Duration,
) -> Result<T> {
    let mut bye = OutBatch::with_capacity(64);
    bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
    match writer.send(&mut bye).await {
        Ok(()) => match tokio::time::timeout(wait, reader).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(anyhow!("producer reader task: {e}")),
            Err(_) => Err(anyhow!("producer DISCONNECT got no RECEIPT")),
        },
        Err(e) => {
            reader.abort();
            Err(e)
        }
    }
}

/// `total` messages split over `producers`: equal shares, the first
/// `total % producers` one more.
pub fn split(total: u64, producers: usize) -> Vec<u64> {
    (0..producers as u64)
        .map(|p| total / producers as u64 + u64::from(p < total % producers as u64))
        .collect()
}

/// Opens `n` producer connections, one after the other.
pub async fn open_producers(ctx: &Ctx, transport: TransportKind, n: usize) -> Result<Vec<Conn>> {
    let opts = ctx.conn_opts();
    let mut producers = Vec::with_capacity(n);
    for _ in 0..n {
        producers.push(open(&ctx.endpoints, transport, &opts).await?);
    }
    Ok(producers)
}

/// What the producers of a queue scenario sent.
#[derive(Debug)]
pub struct Sent {
    /// Messages sent in all.
    pub total: u64,
    /// Messages sent per producer.
    pub per_producer: Vec<u64>,
}

impl Sent {
    /// Nothing sent yet by `producers` producers.
    pub fn new(producers: usize) -> Self {
        Sent {
            total: 0,
            per_producer: vec![0; producers],
        }
    }

    /// Records that producer `p` sent `n` messages. Stopping early at the
    /// time bound is noted; stalling (or a failed connection) is a problem.
    pub fn record(
        &mut self,
        report: &mut Report,
        p: usize,
        n: u64,
        time_bounded: Option<String>,
        stalled: Option<String>,
    ) {
        self.total += n;
        if let Some(slot) = self.per_producer.get_mut(p) {
            *slot = n;
        }
        if let Some(t) = time_bounded {
            report.notes.push(format!("producer {p}: {t}"));
        }
        if let Some(st) = stalled {
            report.problem(format!("producer {p}: {st}"));
        }
    }
}

/// The first problem a check noted; later ones are only counted.
#[derive(Debug, Default)]
pub struct FirstProblem(Option<String>);

impl FirstProblem {
    /// Records the problem `p` describes, unless one is recorded already.
    pub fn note(&mut self, p: impl FnOnce() -> String) {
        if self.0.is_none() {
            self.0 = Some(p());
        }
    }

    /// Takes over `other`'s problem, unless one is recorded already.
    pub fn merge(&mut self, other: FirstProblem) {
        if let Some(p) = other.0 {
            self.note(|| p);
        }
    }

    /// The recorded problem, or nothing.
    pub fn text(&self) -> &str {
        self.0.as_deref().unwrap_or_default()
    }
}

/// One delivery to a queue consumer, after the shared checks.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// The producer that sent it.
    pub producer: usize,
    /// Its sequence number from that producer.
    pub seq: u64,
    /// What marking it in the producer's (shared) set found.
    pub mark: Mark,
    /// Whether it carried `redelivered:true`.
    pub redelivered: bool,
}

/// A queue scenario's own checks on each delivery, and its tallies.
pub trait DeliveryCheck: Default + Send + 'static {
    /// Checks one delivery. `last` is the sequence number this consumer
    /// last recorded from the same producer; the check updates it.
    fn observe(&mut self, d: Delivery, last: &mut Option<u64>);

    /// The counter a consumer publishes as its progress, given how many
    /// deliveries it has ACKed.
    fn progress(&self, acked: u64) -> u64;

    /// Adds another consumer's tallies to these.
    fn merge(&mut self, other: Self);
}

/// What one queue consumer (or all of them) saw.
#[derive(Debug, Default)]
pub struct Consumed<C> {
    /// Deliveries ACKed (duplicates included).
    pub acked: u64,
    /// The scenario's tallies.
    pub checks: C,
}

/// Per-consumer state while running.
struct ConsumerState<C> {
    sets: Arc<Vec<OnceSet>>,
    /// Per producer: the last sequence number recorded.
    last: Vec<Option<u64>>,
    acks: OutBatch,
    seen: Consumed<C>,
}

impl<C: DeliveryCheck> ConsumerState<C> {
    /// Checks one MESSAGE and queues its ACK (`id` = its `ack` header).
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
        // `last` has a slot for every producer with a set.
        let (Some(set), Some(last)) = (self.sets.get(p), self.last.get_mut(p)) else {
            bail!("MESSAGE from unknown producer {p}");
        };
        let delivery = Delivery {
            producer: p,
            seq: st.seq,
            mark: set.mark(st.seq),
            redelivered: v.redelivered,
        };
        self.seen.checks.observe(delivery, last);
        self.acks.bytes.extend_from_slice(b"ACK\nid:");
        self.acks.bytes.extend_from_slice(v.ack);
        self.acks.bytes.extend_from_slice(b"\n\n\0");
        self.acks.end_frame();
        self.seen.acked += 1;
        Ok(())
    }
}

/// One consumer: check, ACK (the ACKs for all frames of one read are
/// written together), publish progress; on stop, DISCONNECT.
async fn consumer<C: DeliveryCheck>(
    mut conn: Conn,
    idx: usize,
    mut state: ConsumerState<C>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    base: Instant,
    drain: Duration,
) -> Result<Consumed<C>> {
    let result: Result<()> = loop {
        match read_or_stop(&mut conn.reader, &mut stop).await {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        if let Err(e) = conn.reader.drain(|v| state.on_message(v)) {
            break Err(e);
        }
        if !state.acks.is_empty() {
            if let Err(e) = conn.writer.send(&mut state.acks).await {
                break Err(e);
            }
            let count = state.seen.checks.progress(state.seen.acked);
            progress.advance(idx, count, base.elapsed().as_nanos() as u64);
        }
    };
    if let Err(e) = result {
        progress.fail(format!("consumer {idx}: {e:#}"));
        return Err(e);
    }
    // Anything arriving now is checked (and counted) too, and ACKed with
    // the DISCONNECT so it is not redelivered elsewhere.
    disconnect(&mut conn, drain, |v| state.on_message(v)).await?;
    Ok(state.seen)
}

/// Opens `n` consumer connections, each subscribed to the queue `dest` with
/// `ack:client-individual` and the configured `prefetch-count`.
pub async fn connect_consumers(
    ctx: &Ctx,
    transport: TransportKind,
    dest: &str,
    n: usize,
) -> Result<Vec<Conn>> {
    let opts = ctx.conn_opts();
    let prefetch = ctx.settings.prefetch;
    futures_util::stream::iter(0..n)
        .map(|_| {
            let (ep, dest) = (ctx.endpoints.clone(), dest.to_owned());
            async move {
                let mut conn = open(&ep, transport, &opts).await?;
                subscribe_all(
                    &mut conn,
                    &[SubSpec {
                        id: "q".into(),
                        destination: dest,
                        ack: "client-individual",
                        prefetch: Some(prefetch),
                    }],
                )
                .await?;
                Ok::<_, anyhow::Error>(conn)
            }
        })
        .buffered(16)
        .try_collect()
        .await
}

/// The running competing consumers of a queue scenario. Consumer `i`
/// publishes its progress in slot `i`.
pub struct Consumers<C> {
    /// Per producer: which sequence numbers were consumed.
    sets: Arc<Vec<OnceSet>>,
    tasks: JoinSet<Result<Consumed<C>>>,
    stop: watch::Sender<bool>,
    count: usize,
}

/// What the consumers saw, once they are done.
#[derive(Debug)]
pub struct Finished<C> {
    /// Totals over all consumers.
    pub totals: Consumed<C>,
    /// Deliveries ACKed per consumer.
    pub per_consumer: Vec<u64>,
    /// ns (clock base) once every consumer's DISCONNECT was confirmed.
    pub end_ns: u64,
    /// Consumers started.
    pub consumers: usize,
}

impl<C> Finished<C> {
    /// Fills the report's counts and rates for `sent` messages, timed from
    /// `start_ns` to the end: deliveries are the ACKed ones, the headline
    /// is `delivered` (those that count as progress) per second. Nothing
    /// sent is a problem.
    pub fn fill_report(&self, report: &mut Report, sent: &Sent, start_ns: u64, delivered: u64) {
        if sent.total == 0 {
            report.problem("nothing was sent");
        }
        let elapsed = self.end_ns.saturating_sub(start_ns) as f64 / 1e9;
        report.metric = "acked msgs/s".into();
        report.unit = "msgs/s".into();
        report.messages_sent = sent.total;
        report.deliveries = self.totals.acked;
        report.subscribers = self.consumers as u64;
        report.connections = (sent.per_producer.len() + self.consumers) as u64;
        report.elapsed_secs = elapsed;
        if elapsed > 0.0 {
            report.publish_rate = sent.total as f64 / elapsed;
            report.delivery_rate = delivered as f64 / elapsed;
        }
        report.value = report.delivery_rate;
    }
}

impl<C: DeliveryCheck> Consumers<C> {
    /// Starts a consumer task per connection, for messages from producers
    /// sending `per_producer[p]` messages each.
    pub fn spawn(
        ctx: &Ctx,
        conns: Vec<Conn>,
        per_producer: &[u64],
        progress: &Arc<Progress>,
    ) -> Self {
        let sets: Arc<Vec<OnceSet>> =
            Arc::new(per_producer.iter().map(|&n| OnceSet::new(n)).collect());
        let (stop, stop_rx) = watch::channel(false);
        let count = conns.len();
        let mut tasks = JoinSet::new();
        for (idx, conn) in conns.into_iter().enumerate() {
            let state = ConsumerState {
                sets: Arc::clone(&sets),
                last: vec![None; sets.len()],
                acks: OutBatch::with_capacity(64 * 1024),
                seen: Consumed::default(),
            };
            tasks.spawn(consumer(
                conn,
                idx,
                state,
                Arc::clone(progress),
                stop_rx.clone(),
                ctx.base,
                ctx.drain(),
            ));
        }
        Consumers {
            sets,
            tasks,
            stop,
            count,
        }
    }

    /// Once the producers are done: waits until the consumers' progress
    /// reaches what was sent
    /// (failing after the drain time without progress), stops them and
    /// collects what they saw. Reports failed consumers, task failures,
    /// a short count and every message never consumed; fills the CPU
    /// fields (from `cpu` to the end).
    pub async fn finish(
        mut self,
        ctx: &Ctx,
        progress: &Progress,
        cpu: CpuMark,
        sent: &Sent,
        report: &mut Report,
    ) -> Finished<C> {
        let consumers = 0..self.count;
        let drained = progress
            .wait_until(ctx.drain(), || {
                progress.sum_of(consumers.clone()) >= sent.total
            })
            .await;
        let _ = self.stop.send(true);
        let mut totals = Consumed::<C>::default();
        let mut per_consumer = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(c)) => {
                    totals.acked += c.acked;
                    per_consumer.push(c.acked);
                    totals.checks.merge(c.checks);
                }
                Ok(Err(e)) => report.problem(format!("consumer: {e:#}")),
                Err(e) => report.problem(format!("consumer task: {e}")),
            }
        }
        // Every consumer's DISCONNECT receipt is in: all ACKs were processed.
        let end_ns = ctx.now_ns();
        cpu.finish(ctx, report);

        progress.report_errors(report);
        if let Err(e) = drained {
            report.problem(format!(
                "consumers did not receive all {} messages: {e}",
                sent.total
            ));
        }
        for (p, set) in self.sets.iter().enumerate() {
            let n = sent.per_producer.get(p).copied().unwrap_or(0);
            let (missing, first) = set.missing_below(n);
            if missing > 0 {
                report.problem(format!(
                    "producer {p}: {missing} of {n} messages never consumed (first: seq {})",
                    first.unwrap_or(0)
                ));
            }
        }
        Finished {
            totals,
            per_consumer,
            end_ns,
            consumers: self.count,
        }
    }
}
