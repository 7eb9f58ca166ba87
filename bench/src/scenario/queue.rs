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

use super::common::{
    close_producer, connect_consumers, open_producers, split, Consumers, Delivery, DeliveryCheck,
    FirstProblem, Sent,
};
use super::{Ctx, Progress};
use crate::body::SendTemplate;
use crate::check::Mark;
use crate::conn::TransportKind;
use crate::report::Report;
use crate::scenario::topic::{produce, producer_reader, Limit};
use anyhow::Result;
use std::sync::Arc;
use tokio::task::JoinSet;

/// What a consumer saw, beyond the deliveries it ACKed.
#[derive(Debug, Default)]
struct Checks {
    duplicates: u64,
    out_of_range: u64,
    backwards: u64,
    redelivered: u64,
    first_problem: FirstProblem,
}

impl DeliveryCheck for Checks {
    /// Exactly once (over all consumers), in order (per producer) and never
    /// redelivered.
    #[inline]
    fn observe(&mut self, d: Delivery, last: &mut Option<u64>) {
        let (p, seq) = (d.producer, d.seq);
        match d.mark {
            Mark::New => {}
            Mark::Duplicate => {
                self.duplicates += 1;
                self.first_problem
                    .note(|| format!("producer {p} seq {seq} consumed twice"));
            }
            Mark::OutOfRange => {
                self.out_of_range += 1;
                self.first_problem
                    .note(|| format!("producer {p} seq {seq} was never sent"));
            }
        }
        if let Some(prev) = *last {
            if seq <= prev {
                self.backwards += 1;
                self.first_problem
                    .note(|| format!("producer {p}: seq {seq} arrived after seq {prev}"));
            }
        }
        *last = Some(seq);
        if d.redelivered {
            self.redelivered += 1;
            self.first_problem
                .note(|| format!("producer {p} seq {seq} was redelivered"));
        }
    }

    /// Progress is every delivery ACKed.
    fn progress(&self, acked: u64) -> u64 {
        acked
    }

    fn merge(&mut self, other: Self) {
        self.duplicates += other.duplicates;
        self.out_of_range += other.out_of_range;
        self.backwards += other.backwards;
        self.redelivered += other.redelivered;
        self.first_problem.merge(other.first_problem);
    }
}

/// Runs the queue scenario.
pub async fn run(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("queue-competing", transport.as_str());
    let dest = ctx.destination("queue", "competing", transport);
    let (np, nc) = (s.producers, s.consumers);
    let per_producer = split(s.queue_messages, np);

    let consumers = connect_consumers(ctx, transport, &dest, nc).await?;
    let producers = open_producers(ctx, transport, np).await?;

    let progress = Arc::new(Progress::new(nc));
    let consumers = Consumers::<Checks>::spawn(ctx, consumers, &per_producer, &progress);

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
            let closed = close_producer(&mut writer, reader, ctx.drain()).await;
            (p, produced, closed)
        });
    }
    let mut sent = Sent::new(np);
    while let Some(joined) = prod_tasks.join_next().await {
        match joined {
            Ok((p, produced, closed)) => {
                match produced {
                    Ok(pr) => sent.record(&mut report, p, pr.sent, pr.time_bounded, pr.stalled),
                    Err(e) => report.problem(format!("producer {p}: {e:#}")),
                }
                if let Err(e) = closed {
                    report.problem(format!("producer {p}: {e:#}"));
                }
            }
            Err(e) => report.problem(format!("producer task: {e}")),
        }
    }
    let done = consumers
        .finish(ctx, &progress, cpu, &sent, &mut report)
        .await;
    let totals = &done.totals.checks;
    if totals.duplicates + totals.out_of_range + totals.backwards + totals.redelivered > 0 {
        report.problem(format!(
            "{} duplicate(s), {} unknown, {} out of order, {} redelivered; first: {}",
            totals.duplicates,
            totals.out_of_range,
            totals.backwards,
            totals.redelivered,
            totals.first_problem.text()
        ));
    }
    report.notes.push(format!(
        "{np} producer(s), {nc} consumers (prefetch {}, client-individual); acked per consumer: {:?}",
        s.prefetch, done.per_consumer
    ));
    // Every delivery ACKed counts.
    done.fill_report(&mut report, &sent, start_ns, done.totals.acked);
    Ok(report)
}
