//! `topic-1to1` and `topic-fanout`: one producer publishes N messages to a
//! topic; S subscriptions, spread round-robin over C connections, must each
//! receive all N exactly once and in order.
//!
//! The clock runs from the producer's first write to the moment the last
//! subscription received the last message. The headline number is
//! deliveries per second: N / t for one subscriber, N × S / t for fan-out
//! (the RabbitMQ-style "delivered messages per second").
//!
//! The cluster scenarios (`cluster-1to1`, `cluster-fanout`) run the same
//! code with the producer on one node and the subscriber connections on
//! others ([`Placement`]).

use super::common::{fill_open, producer_receipt, read_or_stop, ProducerReceipt};
use super::{Ctx, Progress};
use crate::body::{parse_stamp, SendTemplate};
use crate::check::SeqCheck;
use crate::cli::Flow;
use crate::conn::{
    disconnect, open, subscribe_all, Conn, Endpoints, FrameReader, FrameWriter, OutBatch, SubSpec,
    TransportKind,
};
use crate::report::Report;
use crate::scan::{Cmd, FrameView};
use anyhow::{anyhow, bail, Result};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Where the connections of a topic scenario go.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The producer's broker.
    pub producer: Endpoints,
    /// Subscriber connection `c` goes to `subscribers[c % len]` (the
    /// producer's broker when empty).
    pub subscribers: Vec<Endpoints>,
}

impl Placement {
    /// Everyone on one broker.
    pub fn single(endpoints: &Endpoints) -> Self {
        Placement {
            producer: endpoints.clone(),
            subscribers: vec![endpoints.clone()],
        }
    }

    /// The broker of subscriber connection `c`.
    fn subscriber(&self, c: usize) -> &Endpoints {
        match self.subscribers.len() {
            0 => &self.producer,
            n => &self.subscribers[c % n],
        }
    }
}

/// The shape of a topic scenario.
#[derive(Debug, Clone)]
pub struct Shape {
    /// Scenario name.
    pub name: &'static str,
    /// Messages to publish.
    pub messages: u64,
    /// Subscriptions.
    pub subscribers: usize,
    /// Connections the subscriptions are spread over.
    pub connections: usize,
    /// Which brokers they connect to.
    pub placement: Placement,
}

/// How the producer limits what is in flight.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// At most this many messages ahead of the slowest receiver connection.
    Window(u64),
    /// Receipts every `every` messages, at most `in_flight` outstanding.
    Receipt {
        /// Receipt interval.
        every: u64,
        /// Receipts outstanding.
        in_flight: u64,
    },
    /// One of `producers` producers sharing the receivers: at most
    /// `share` messages ahead of its share of everything received
    /// (received total / producers).
    Shared {
        /// Producers sharing the window.
        producers: u64,
        /// This producer's share of the window.
        share: u64,
    },
    /// TCP backpressure only.
    Unbounded,
}

impl Limit {
    /// The smallest batch worth waking the producer for.
    pub fn min_chunk(&self, batch: u64) -> u64 {
        match *self {
            Limit::Window(w) | Limit::Shared { share: w, .. } => batch.min(w / 2).max(1),
            Limit::Receipt { .. } | Limit::Unbounded => 1,
        }
    }

    /// How many messages may have been sent in total right now.
    #[inline]
    pub fn allowed(&self, progress: &Progress) -> u64 {
        match *self {
            Limit::Window(w) => progress.min().saturating_add(w),
            Limit::Receipt { every, in_flight } => progress
                .receipted
                .load(Ordering::Acquire)
                .saturating_add(every.saturating_mul(in_flight)),
            Limit::Shared { producers, share } => {
                (progress.sum() / producers.max(1)).saturating_add(share)
            }
            Limit::Unbounded => u64::MAX,
        }
    }
}

/// What the producer did.
#[derive(Debug)]
pub struct Produced {
    /// Messages written.
    pub sent: u64,
    /// ns (clock base) just before the first write.
    pub start_ns: u64,
    /// ns (clock base) after the last write.
    pub end_ns: u64,
    /// Why it stopped before N, if it did because of the time bound.
    pub time_bounded: Option<String>,
    /// Why it stopped before N, if it stalled or a connection failed.
    pub stalled: Option<String>,
}

/// Publishes up to `n` messages from `template` (and `receipt_template`
/// every `every`-th message, if given), within `limit`, in batches.
#[allow(clippy::too_many_arguments)]
pub async fn produce(
    ctx: &Ctx,
    writer: &mut FrameWriter,
    template: &SendTemplate,
    receipt_template: Option<(&SendTemplate, u64)>,
    n: u64,
    limit: Limit,
    progress: &Progress,
) -> Result<Produced> {
    let s = &ctx.settings;
    let batch = s.batch as u64;
    let mut out = OutBatch::with_capacity(s.batch * (template.len() + 32));
    let deadline = Instant::now() + Duration::from_secs_f64(s.max_secs);
    let start_ns = ctx.now_ns();
    let mut sent = 0u64;
    let (mut time_bounded, mut stalled) = (None, None);
    while sent < n {
        if progress.failed() {
            stalled = Some(format!(
                "stopped after {sent} messages: a connection failed"
            ));
            break;
        }
        if Instant::now() >= deadline {
            time_bounded = Some(format!(
                "time bound of {} s reached: sent {sent} of {n} messages",
                s.max_secs
            ));
            break;
        }
        let allowed = limit.allowed(progress);
        // Resume only once a worthwhile batch fits, not for every message
        // the receivers finish (no "silly window").
        let need = limit.min_chunk(batch).min(n - sent);
        if allowed.saturating_sub(sent) < need {
            if let Err(e) = progress
                .wait_until(ctx.drain(), || {
                    limit.allowed(progress).saturating_sub(sent) >= need
                })
                .await
            {
                stalled = Some(format!("producer stalled after {sent} messages: {e}"));
                break;
            }
            continue;
        }
        let k = batch.min(allowed - sent).min(n - sent);
        for seq in sent..sent + k {
            match receipt_template {
                Some((t, every)) if (seq + 1) % every == 0 => t.encode(seq, 0, 0, &mut out.bytes),
                _ => template.encode(seq, 0, 0, &mut out.bytes),
            }
            out.end_frame();
        }
        writer.send(&mut out).await?;
        sent += k;
    }
    Ok(Produced {
        sent,
        start_ns,
        end_ns: ctx.now_ns(),
        time_bounded,
        stalled,
    })
}

/// Reads a producer connection: RECEIPTs for SENDs advance
/// `progress.receipted`; the RECEIPT `bye` (DISCONNECT) ends it; anything
/// else is a failure.
pub async fn producer_reader(mut reader: FrameReader, progress: Arc<Progress>) -> Result<()> {
    loop {
        let mut bye = false;
        let drained = reader.drain(|v| {
            match producer_receipt(v)? {
                ProducerReceipt::Bye => bye = true,
                ProducerReceipt::Seq(seq) => {
                    progress.receipted.fetch_max(seq + 1, Ordering::AcqRel);
                    progress.notify.notify_waiters();
                }
            }
            Ok(())
        });
        let step = match drained {
            Ok(_) if bye => return Ok(()),
            Ok(_) => fill_open(&mut reader, "producer").await,
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            progress.fail(format!("producer connection: {e:#}"));
            return Err(e);
        }
    }
}

/// Parses `s<number>`.
fn sub_index(id: &[u8]) -> Result<usize> {
    match id.split_first() {
        Some((b's', digits)) if !digits.is_empty() && digits.len() < 10 => {
            let mut n = 0usize;
            for &d in digits {
                if !d.is_ascii_digit() {
                    bail!("unknown subscription {:?}", String::from_utf8_lossy(id));
                }
                n = n * 10 + usize::from(d - b'0');
            }
            Ok(n)
        }
        _ => bail!("unknown subscription {:?}", String::from_utf8_lossy(id)),
    }
}

/// Checks one MESSAGE for subscriber connection `conn` (subscriptions
/// `conn, conn + stride, …`).
#[inline]
fn on_message(
    v: &FrameView<'_>,
    conn: usize,
    stride: usize,
    checks: &mut [SeqCheck],
) -> Result<()> {
    if v.command != Cmd::Message {
        bail!("unexpected frame: {}", v.describe());
    }
    let g = sub_index(v.subscription)?;
    if g % stride != conn {
        bail!("MESSAGE for subscription s{g} arrived on connection {conn}");
    }
    let check = checks
        .get_mut(g / stride)
        .ok_or_else(|| anyhow!("MESSAGE for unknown subscription s{g}"))?;
    let stamp = parse_stamp(v.body)?;
    if stamp.producer != 0 {
        bail!("MESSAGE from unknown producer {}", stamp.producer);
    }
    check.observe(stamp.seq);
    Ok(())
}

/// One subscriber connection: counts and checks every MESSAGE until told
/// to stop, then disconnects (checking whatever still arrives).
#[allow(clippy::too_many_arguments)]
async fn subscriber(
    mut conn: Conn,
    idx: usize,
    local_subs: usize,
    stride: usize,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    base: Instant,
    drain: Duration,
) -> Result<(usize, Vec<SeqCheck>)> {
    let mut checks = vec![SeqCheck::default(); local_subs];
    let mut published = 0u64;
    let result: Result<()> = loop {
        match read_or_stop(&mut conn.reader, &mut stop).await {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        if let Err(e) = conn
            .reader
            .drain(|v| on_message(v, idx, stride, &mut checks))
        {
            break Err(e);
        }
        let min = checks.iter().map(|c| c.received).min().unwrap_or(0);
        if min > published {
            published = min;
            progress.advance(idx, min, base.elapsed().as_nanos() as u64);
        }
    };
    if let Err(e) = result {
        progress.fail(format!("subscriber connection {idx}: {e:#}"));
        return Err(e);
    }
    disconnect(&mut conn, drain, |v| {
        on_message(v, idx, stride, &mut checks)
    })
    .await?;
    Ok((idx, checks))
}

/// Runs a topic scenario.
pub async fn run(ctx: &Ctx, transport: TransportKind, shape: Shape) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new(shape.name, transport.as_str());
    let subs = shape.subscribers.max(1);
    let conns_n = shape.connections.clamp(1, subs);
    let per_conn = subs.div_ceil(conns_n);
    let dest = ctx.destination("topic", shape.name, transport);
    let opts = ctx.conn_opts();

    // Subscribers first, every SUBSCRIBE confirmed by a receipt.
    let conns: Vec<(Conn, usize)> = futures_util::stream::iter(0..conns_n)
        .map(|c| {
            let (ep, dest) = (shape.placement.subscriber(c).clone(), dest.clone());
            async move {
                let mut conn = open(&ep, transport, &opts).await?;
                let specs: Vec<SubSpec> = (c..subs)
                    .step_by(conns_n)
                    .map(|g| SubSpec {
                        id: format!("s{g}"),
                        destination: dest.clone(),
                        ack: "auto",
                        prefetch: None,
                    })
                    .collect();
                subscribe_all(&mut conn, &specs).await?;
                Ok::<_, anyhow::Error>((conn, specs.len()))
            }
        })
        .buffered(64)
        .try_collect()
        .await?;

    let producer = open(&shape.placement.producer, transport, &opts).await?;
    let progress = Arc::new(Progress::new(conns_n));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (idx, (conn, local)) in conns.into_iter().enumerate() {
        tasks.spawn(subscriber(
            conn,
            idx,
            local,
            conns_n,
            Arc::clone(&progress),
            stop_rx.clone(),
            ctx.base,
            ctx.drain(),
        ));
    }
    let mut writer = producer.writer;
    let reader_task = tokio::spawn(producer_reader(producer.reader, Arc::clone(&progress)));

    let limit = match s.flow {
        Flow::Window => Limit::Window((s.window / per_conn as u64).max(1)),
        Flow::Receipt => Limit::Receipt {
            every: s.receipt_every,
            in_flight: s.receipts_in_flight,
        },
        Flow::None => Limit::Unbounded,
    };
    let template = SendTemplate::new(&dest, 0, s.body_size, false);
    let receipt_template =
        matches!(s.flow, Flow::Receipt).then(|| SendTemplate::new(&dest, 0, s.body_size, true));
    report.notes.push(format!(
        "{subs} subscription(s) on {conns_n} connection(s), {} per connection; flow {:?}{}",
        per_conn,
        s.flow,
        match limit {
            Limit::Window(w) => format!(" ({w} messages ahead of the slowest connection)"),
            Limit::Receipt { every, in_flight } =>
                format!(" (receipt every {every}, {in_flight} outstanding)"),
            Limit::Shared { .. } | Limit::Unbounded => String::new(),
        }
    ));

    let cpu = ctx.cpu_mark();
    let produced = produce(
        ctx,
        &mut writer,
        &template,
        receipt_template.as_ref().map(|t| (t, s.receipt_every)),
        shape.messages,
        limit,
        &progress,
    )
    .await?;
    let sent = produced.sent;
    let drained = progress
        .wait_until(ctx.drain(), || progress.min() >= sent)
        .await;
    let end_ns = progress.last_advance_ns().max(produced.end_ns);
    cpu.finish(ctx, &mut report);

    // Wind down: producer DISCONNECT, subscribers DISCONNECT.
    let mut bye = OutBatch::with_capacity(64);
    bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
    let producer_closed = match writer.send(&mut bye).await {
        Ok(()) => tokio::time::timeout(ctx.drain(), reader_task).await,
        Err(e) => {
            reader_task.abort();
            Ok(Ok(Err(e)))
        }
    };
    let _ = stop_tx.send(true);
    let mut deliveries = 0u64;
    let mut bad_subs = 0usize;
    let mut examples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok((idx, checks))) => {
                for (i, c) in checks.iter().enumerate() {
                    deliveries += c.received;
                    if let Some(p) = c.problem(sent) {
                        bad_subs += 1;
                        if examples.len() < 3 {
                            examples.push(format!("subscription s{}: {p}", idx + i * conns_n));
                        }
                    }
                }
            }
            Ok(Err(e)) => report.problem(format!("subscriber: {e:#}")),
            Err(e) => report.problem(format!("subscriber task: {e}")),
        }
    }
    progress.report_errors(&mut report);
    match producer_closed {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => report.problem(format!("producer connection: {e:#}")),
        Ok(Err(e)) => report.problem(format!("producer reader task: {e}")),
        Err(_) => report.problem("producer DISCONNECT got no RECEIPT"),
    }
    if let Err(e) = drained {
        report.problem(format!(
            "not every subscription received all {sent} messages: {e}"
        ));
    }
    if bad_subs > 0 {
        report.problem(format!(
            "{bad_subs} of {subs} subscription(s) did not get every message exactly once in order"
        ));
        for e in examples {
            report.problem(e);
        }
    }
    if let Some(t) = produced.time_bounded {
        report.notes.push(t);
    }
    if let Some(st) = produced.stalled {
        report.problem(st);
    }
    if sent == 0 {
        report.problem("nothing was sent");
    }

    let elapsed = end_ns.saturating_sub(produced.start_ns) as f64 / 1e9;
    report.metric = if subs == 1 {
        "received msgs/s".into()
    } else {
        "delivered msgs/s".into()
    };
    report.unit = "msgs/s".into();
    report.messages_sent = sent;
    report.deliveries = deliveries;
    report.subscribers = subs as u64;
    report.connections = conns_n as u64 + 1;
    report.elapsed_secs = elapsed;
    if elapsed > 0.0 {
        report.publish_rate = sent as f64 / elapsed;
        report.delivery_rate = deliveries as f64 / elapsed;
    }
    report.value = report.delivery_rate;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids() {
        assert_eq!(sub_index(b"s0").unwrap(), 0);
        assert_eq!(sub_index(b"s981").unwrap(), 981);
        assert!(sub_index(b"x1").is_err());
        assert!(sub_index(b"s").is_err());
        assert!(sub_index(b"s1a").is_err());
    }
}
