//! The cluster scenarios: the same measurements as `topic-1to1`,
//! `topic-fanout` and `latency`, with the publisher on node 1 and the
//! subscribers on the other nodes, so every message crosses Kafka.
//!
//! * `cluster-1to1`: node 1 → one subscriber on node 2; received msgs/s.
//! * `cluster-fanout`: node 1 → S subscriptions on C connections spread
//!   over nodes 2..; deliveries/s (and the publish rate in a note).
//! * `cluster-latency`: for each rate, first the bare Kafka round trip
//!   ([`kafka_rtt`](super::kafka_rtt)) to the same server, then node 1 →
//!   node 2 at that rate; p50/p90/p99/max of both and the difference of
//!   the p99s (the project's target: ≤ 5 ms at 1,000 msgs/s).
//!
//! The publisher sends without receipts; the subscribers must receive every
//! message exactly once and in order, so a lossy run fails instead of
//! looking fast.

use super::kafka_rtt;
use super::latency;
use super::topic::{self, Placement, Shape};
use super::Ctx;
use crate::cli::Scenario;
use crate::cluster::ClusterTarget;
use crate::conn::TransportKind;
use crate::report::{fmt_num, ClusterLatencyReport, Report};
use anyhow::{anyhow, Result};

/// Runs a cluster scenario: one report (cluster-latency: one per rate).
pub async fn run(ctx: &Ctx, scenario: Scenario) -> Vec<Report> {
    let name = scenario.name();
    let Some(target) = ctx.cluster.as_ref() else {
        let mut r = Report::new(name, "tcp");
        r.problem(
            "needs a cluster: --start-broker PATH (starts Tansu and the nodes), or --cluster-tcp \
             and --kafka",
        );
        return vec![r];
    };
    let result = match scenario {
        Scenario::Cluster1to1 => one_to_one(ctx, target).await.map(|r| vec![r]),
        Scenario::ClusterFanout => fanout(ctx, target).await.map(|r| vec![r]),
        Scenario::ClusterLatency => {
            let mut reports = Vec::new();
            for &rate in &ctx.settings.cluster.rates {
                reports.push(
                    latency_at(ctx, target, rate)
                        .await
                        .unwrap_or_else(|e| failed(name, e)),
                );
            }
            Ok(reports)
        }
        other => Err(anyhow!("{} is not a cluster scenario", other.name())),
    };
    result.unwrap_or_else(|e| vec![failed(name, e)])
}

fn failed(name: &str, e: anyhow::Error) -> Report {
    let mut r = Report::new(name, "tcp");
    r.problem(format!("{e:#}"));
    r
}

/// Publisher on node 1, one subscriber on node 2.
async fn one_to_one(ctx: &Ctx, target: &ClusterTarget) -> Result<Report> {
    let cpu = target.cpu_mark();
    let shape = Shape {
        name: Scenario::Cluster1to1.name(),
        messages: ctx.settings.cluster.messages,
        subscribers: 1,
        connections: 1,
        placement: Placement {
            producer: target.node(0).clone(),
            subscribers: vec![target.node(1).clone()],
        },
    };
    let mut r = topic::run(ctx, TransportKind::Tcp, shape).await?;
    r.notes.push(format!(
        "publisher on node 1, subscriber on node 2: {} msgs/s published, {} msgs/s received",
        fmt_num(r.publish_rate),
        fmt_num(r.delivery_rate)
    ));
    r.notes.push(format!(
        "CPU (% of a core, setup included): {}",
        cpu.since(target)
    ));
    Ok(r)
}

/// Publisher on node 1, subscriber connections spread over nodes 2.. .
async fn fanout(ctx: &Ctx, target: &ClusterTarget) -> Result<Report> {
    let cs = &ctx.settings.cluster;
    let cpu = target.cpu_mark();
    let others = target.nodes.len().saturating_sub(1).max(1);
    let shape = Shape {
        name: Scenario::ClusterFanout.name(),
        messages: cs.fanout_messages,
        subscribers: cs.subscribers,
        connections: cs.fanout_connections,
        placement: Placement {
            producer: target.node(0).clone(),
            subscribers: (1..=others).map(|i| target.node(i).clone()).collect(),
        },
    };
    let mut r = topic::run(ctx, TransportKind::Tcp, shape).await?;
    r.notes.push(format!(
        "publisher on node 1, subscriber connections over nodes 2–{}: {} msgs/s published, {} \
         deliveries/s",
        others + 1,
        fmt_num(r.publish_rate),
        fmt_num(r.delivery_rate)
    ));
    r.notes.push(format!(
        "CPU (% of a core, setup included): {}",
        cpu.since(target)
    ));
    Ok(r)
}

/// The bare Kafka round trip, then node 1 → node 2, both at `rate`.
async fn latency_at(ctx: &Ctx, target: &ClusterTarget, rate: u64) -> Result<Report> {
    let cs = &ctx.settings.cluster;
    let kafka_plan = kafka_rtt::Plan {
        bootstrap: target.kafka.clone(),
        topic: format!("stompede-bench.rtt.{}.{rate}", ctx.run_id),
        partitions: cs.partitions,
        rate,
        secs: cs.secs,
        warmup_secs: cs.warmup_secs,
        body_size: ctx.settings.body_size,
        linger_ms: cs.linger_ms,
        fetch_wait_ms: cs.fetch_wait_ms,
        base: ctx.base,
        drain: ctx.drain(),
    };
    let cpu = target.cpu_mark();
    let bare = kafka_rtt::measure(&kafka_plan).await;
    let bare_cpu = cpu.since(target);

    let cpu = target.cpu_mark();
    let plan = latency::Plan {
        name: Scenario::ClusterLatency.name(),
        producer: target.node(0).clone(),
        subscriber: target.node(1).clone(),
        destination: ctx.destination(
            "topic",
            &format!("cluster-latency-{rate}"),
            TransportKind::Tcp,
        ),
        rate,
        secs: cs.secs,
        warmup_secs: cs.warmup_secs,
    };
    let mut r = latency::measure(ctx, TransportKind::Tcp, plan).await?;
    let cross_cpu = cpu.since(target);

    let cross = r
        .latency
        .as_ref()
        .map(|l| l.from_scheduled.clone())
        .unwrap_or_default();
    let bare = match bare {
        Ok(b) => b,
        Err(e) => {
            r.problem(format!("bare Kafka round trip: {e:#}"));
            kafka_rtt::Measured::default()
        }
    };
    for p in &bare.problems {
        r.problem(format!("bare Kafka round trip: {p}"));
    }
    let difference_ms = (cross.p99_us - bare.from_scheduled.p99_us) / 1e3;
    r.notes.push(format!(
        "cross-node (node 1 → node 2), from the scheduled send: p50 {:.2} / p90 {:.2} / p99 {:.2} \
         / max {:.2} ms ({} samples)",
        cross.p50_us / 1e3,
        cross.p90_us / 1e3,
        cross.p99_us / 1e3,
        cross.max_us / 1e3,
        cross.samples
    ));
    let k = &bare.from_scheduled;
    r.notes.push(format!(
        "bare rdkafka round trip, same server, same rate: p50 {:.2} / p90 {:.2} / p99 {:.2} / max \
         {:.2} ms ({} samples; {} of {} records back)",
        k.p50_us / 1e3,
        k.p90_us / 1e3,
        k.p99_us / 1e3,
        k.max_us / 1e3,
        k.samples,
        bare.received,
        bare.sent
    ));
    r.notes.push(format!(
        "p99 difference {difference_ms:+.2} ms (linger.ms {}, fetch.wait.max.ms {})",
        cs.linger_ms, cs.fetch_wait_ms
    ));
    r.notes
        .push(format!("CPU during the bare round trip: {bare_cpu}"));
    r.notes
        .push(format!("CPU during the cross-node run: {cross_cpu}"));
    r.cluster = Some(ClusterLatencyReport {
        rate,
        kafka: bare.from_scheduled,
        kafka_from_actual_send: bare.from_actual_send,
        kafka_sent: bare.sent,
        kafka_received: bare.received,
        p99_difference_ms: difference_ms,
        linger_ms: cs.linger_ms,
        fetch_wait_max_ms: cs.fetch_wait_ms,
    });
    Ok(r)
}
