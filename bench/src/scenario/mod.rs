//! The scenarios and what they share.

pub mod chat;
pub mod cluster;
pub mod common;
pub mod idle;
pub mod kafka_rtt;
pub mod latency;
pub mod persistent;
pub mod queue;
pub mod recovery;
pub mod topic;

use crate::cli::{Scenario, Settings};
use crate::conn::{ConnOpts, Endpoints, TransportKind};
use crate::procfs;
use crate::report::Report;
use anyhow::{anyhow, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Everything a scenario needs to know.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Resolved settings.
    pub settings: Settings,
    /// Broker addresses.
    pub endpoints: Endpoints,
    /// Broker pid, when known (RSS and CPU readings).
    pub broker_pid: Option<u32>,
    /// Unique per run: destinations are suffixed with it so that runs
    /// against a long-lived broker never see each other's messages.
    pub run_id: String,
    /// The clock base for timestamps in message bodies.
    pub base: Instant,
    /// The stompede binary of `--start-broker`: the recovery scenario
    /// starts and restarts its own brokers with it.
    pub broker_binary: Option<std::path::PathBuf>,
    /// The cluster the cluster scenarios run against (None: they fail,
    /// saying so).
    pub cluster: Option<crate::cluster::ClusterTarget>,
}

impl Ctx {
    /// Connection options for bulk connections.
    pub fn conn_opts(&self) -> ConnOpts {
        ConnOpts {
            parser: self.settings.parser,
            small_buffers: false,
        }
    }

    /// Nanoseconds since the clock base.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// A destination name unique to this run.
    pub fn destination(&self, kind: &str, scenario: &str, transport: TransportKind) -> String {
        format!(
            "/{kind}/bench.{scenario}.{}.{}",
            transport.as_str(),
            self.run_id
        )
    }

    /// How long a producer may wait for progress, and how long to wait for
    /// in-flight messages at the end.
    pub fn drain(&self) -> Duration {
        Duration::from_secs_f64(self.settings.drain_secs)
    }

    /// Reads CPU use (broker, this tool) now.
    pub fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            broker: self.broker_pid.and_then(|p| procfs::cpu_secs(p).ok()),
            bench: procfs::self_cpu_secs(),
        }
    }
}

/// CPU time readings at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuMark {
    broker: Option<f64>,
    bench: f64,
}

impl CpuMark {
    /// Fills the report's CPU fields with the use since `self`.
    pub fn finish(&self, ctx: &Ctx, report: &mut Report) {
        let now = ctx.cpu_mark();
        report.broker_cpu_secs = match (self.broker, now.broker) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        report.bench_cpu_secs = now.bench - self.bench;
    }
}

/// Progress shared between receivers (who publish it) and producers or
/// the coordinator (who wait on it).
#[derive(Debug, Default)]
pub struct Progress {
    /// Per receiver connection: a monotonic counter (messages received by
    /// its slowest subscription, or deliveries consumed).
    pub counts: Vec<AtomicU64>,
    /// Per receiver connection: ns (since the clock base) of the last
    /// batch that advanced its counter.
    pub last_ns: Vec<AtomicU64>,
    /// Receipts confirmed by the broker (producer side): highest `seq + 1`.
    pub receipted: AtomicU64,
    /// Signalled whenever anything above changes or a task fails.
    pub notify: Notify,
    /// Errors from tasks, reported by the coordinator.
    pub errors: Mutex<Vec<String>>,
}

impl Progress {
    /// Progress for `receivers` connections.
    pub fn new(receivers: usize) -> Self {
        Progress {
            counts: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
            last_ns: (0..receivers).map(|_| AtomicU64::new(0)).collect(),
            ..Progress::default()
        }
    }

    /// The smallest counter.
    #[inline]
    pub fn min(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// The sum of the counters.
    pub fn sum(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }

    /// The sum of the counters in `range` (0 if it is out of bounds).
    pub fn sum_of(&self, range: std::ops::Range<usize>) -> u64 {
        self.counts
            .get(range)
            .map(|c| c.iter().map(|v| v.load(Ordering::Acquire)).sum())
            .unwrap_or(0)
    }

    /// Counter `i` (0 if there is none).
    pub fn count(&self, i: usize) -> u64 {
        self.counts
            .get(i)
            .map(|c| c.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// The latest advance over all connections (ns since the clock base).
    pub fn last_advance_ns(&self) -> u64 {
        self.last_ns
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
    }

    /// Publishes connection `i`'s counter.
    #[inline]
    pub fn advance(&self, i: usize, count: u64, now_ns: u64) {
        if let (Some(c), Some(t)) = (self.counts.get(i), self.last_ns.get(i)) {
            c.store(count, Ordering::Release);
            t.store(now_ns, Ordering::Release);
        }
        self.notify.notify_waiters();
    }

    /// Records a task failure and wakes waiters.
    pub fn fail(&self, what: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push(what);
        }
        self.notify.notify_waiters();
    }

    /// Whether a task failed.
    pub fn failed(&self) -> bool {
        self.errors.lock().map(|e| !e.is_empty()).unwrap_or(true)
    }

    /// The recorded failures.
    pub fn take_errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    /// Moves the recorded failures into `report`'s problems (those not
    /// already there).
    pub fn report_errors(&self, report: &mut Report) {
        for e in self.take_errors() {
            if !report.problems.contains(&e) {
                report.problem(e);
            }
        }
    }

    /// Waits until `cond` holds (or a task failed). Errors if nothing
    /// changes for `stall`.
    pub async fn wait_until(&self, stall: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond() {
                return Ok(());
            }
            if self.failed() {
                return Err(anyhow!("a connection failed"));
            }
            if tokio::time::timeout(stall, notified).await.is_err() {
                return Err(anyhow!("no progress for {:.1} s", stall.as_secs_f64()));
            }
        }
    }
}

/// Runs one scenario over one transport; failures become problems in the
/// report. Most scenarios report one row; cluster-latency one per rate.
pub async fn run(ctx: &Ctx, scenario: Scenario, transport: TransportKind) -> Vec<Report> {
    if scenario.is_cluster() {
        let mut reports = cluster::run(ctx, scenario).await;
        for r in &mut reports {
            apply_target(scenario, ctx.settings.quick, r);
        }
        return reports;
    }
    vec![run_one(ctx, scenario, transport).await]
}

/// Runs a scenario that reports one row.
async fn run_one(ctx: &Ctx, scenario: Scenario, transport: TransportKind) -> Report {
    let name = scenario.name();
    let result = match scenario {
        Scenario::Topic1to1 => {
            topic::run(
                ctx,
                transport,
                topic::Shape {
                    name,
                    messages: ctx.settings.messages,
                    subscribers: 1,
                    connections: 1,
                    placement: topic::Placement::single(&ctx.endpoints),
                },
            )
            .await
        }
        Scenario::TopicFanout => {
            topic::run(
                ctx,
                transport,
                topic::Shape {
                    name,
                    messages: ctx.settings.fanout_messages,
                    subscribers: ctx.settings.subscribers,
                    connections: ctx.settings.fanout_connections,
                    placement: topic::Placement::single(&ctx.endpoints),
                },
            )
            .await
        }
        Scenario::Latency => latency::run(ctx, transport).await,
        Scenario::IdleConnections => idle::run(ctx).await,
        Scenario::QueueCompeting => queue::run(ctx, transport).await,
        Scenario::PersistentQueue => persistent::run(ctx, transport).await,
        Scenario::Recovery => recovery::run(ctx).await,
        Scenario::ChatHistory => chat::history(ctx).await,
        Scenario::ChatResume => chat::resume(ctx, transport).await,
        Scenario::ChatFanout => chat::fanout(ctx, transport).await,
        Scenario::Cluster1to1 | Scenario::ClusterFanout | Scenario::ClusterLatency => {
            Err(anyhow!("{name} is run by scenario::cluster::run"))
        }
    };
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let mut r = Report::new(name, transport.as_str());
            r.problem(format!("{e:#}"));
            r
        }
    };
    if report.broker_rss_kib.is_none() {
        report.broker_rss_kib = ctx.broker_pid.and_then(|p| procfs::rss_kib(p).ok());
    }
    apply_target(scenario, ctx.settings.quick, &mut report);
    report
}

/// The project's targets (2-core machine, load generator on the same
/// machine).
fn apply_target(scenario: Scenario, quick: bool, r: &mut Report) {
    let (target, met) = match scenario {
        Scenario::Topic1to1 => (">= 500,000 msgs/s", Some(r.value >= 500_000.0)),
        Scenario::TopicFanout => (">= 1,500,000 deliveries/s", Some(r.value >= 1_500_000.0)),
        Scenario::Latency => (
            "p99 <= 500 µs",
            r.latency.as_ref().map(|l| l.from_scheduled.p99_us <= 500.0),
        ),
        Scenario::IdleConnections => (
            "<= 16 KiB/conn, 10,000 in <= 2 s",
            r.idle.as_ref().and_then(|i| {
                let per = i.rss_per_connection_kib?;
                // The time target is for 10,000 connections; scale it.
                let budget = 2.0 * (i.connections as f64 / 10_000.0).max(0.02);
                Some(per <= 16.0 && i.connect_secs <= budget)
            }),
        ),
        Scenario::QueueCompeting => (">= 200,000 msgs/s", Some(r.value >= 200_000.0)),
        Scenario::PersistentQueue => (">= 50,000 msgs/s", Some(r.value >= 50_000.0)),
        Scenario::Recovery => (
            "<= 10 s for 1,000,000 msgs",
            // Judged only at the target's size.
            r.recovery
                .as_ref()
                .filter(|x| x.messages >= 1_000_000)
                .map(|x| x.listen_secs <= 10.0),
        ),
        Scenario::ChatHistory => (
            "page of 50 p99 <= 2 ms (1,000,000 msgs)",
            r.chat
                .as_ref()
                .filter(|c| c.room_messages >= 1_000_000)
                .and_then(|c| c.page_last_event.as_ref())
                .map(|l| l.p99_us <= 2000.0),
        ),
        Scenario::ChatResume => (
            "10,000 missed in <= 0.5 s",
            r.chat
                .as_ref()
                .filter(|c| c.resume_missed >= 10_000 && !c.resume_secs.is_empty())
                .map(|_| r.value <= 0.5),
        ),
        Scenario::ChatFanout => (
            ">= 500,000 deliveries/s (1,000 members)",
            r.chat
                .as_ref()
                .filter(|c| c.members >= 1000)
                .map(|_| r.value >= 500_000.0),
        ),
        Scenario::Cluster1to1 | Scenario::ClusterFanout => ("none (measured)", None),
        Scenario::ClusterLatency => match r.cluster.as_ref() {
            Some(c) if c.rate == 1000 => (
                "p99 − Kafka p99 <= 5 ms at 1,000/s",
                Some(c.p99_difference_ms <= 5.0),
            ),
            _ => ("none at this rate (5 ms at 1,000/s)", None),
        },
    };
    r.target = target.to_owned();
    // A run that lost or failed has no meaningful headline number, and a
    // quick smoke run is too short to be judged against the targets.
    r.target_met = if r.ok && !quick { met } else { None };
}
