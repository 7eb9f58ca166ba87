//! Runs the cluster scenarios of one invocation: against clusters started
//! here (`--start-broker`: Tansu and `--cluster-nodes` nodes, a fresh
//! cluster for each scenario and each cluster-latency rate, because Tansu's
//! SQLite storage gets slower as a partition grows, so one measurement
//! would otherwise inherit the previous one's records; `--reuse-broker`
//! keeps one), or against a given one (`--cluster-tcp`, `--kafka`).

use super::harness::ManagedCluster;
use super::ClusterTarget;
use crate::cli::{Args, Scenario, Settings};
use crate::conn::TransportKind;
use crate::report::Report;
use crate::scenario::{self, Ctx};
use anyhow::Result;
use std::time::{Duration, Instant};

/// What the cluster runs need from the invocation.
pub struct Invocation<'a> {
    /// The command line.
    pub args: &'a Args,
    /// Its resolved settings.
    pub settings: &'a Settings,
    /// Unique per run.
    pub run_id: &'a str,
    /// The run's clock base.
    pub base: Instant,
    /// The longest one scenario may take.
    pub hard_limit: Duration,
}

/// One measurement: a scenario, and for cluster-latency one rate.
fn jobs(scenarios: &[Scenario], settings: &Settings) -> Vec<(Scenario, Settings)> {
    let mut jobs = Vec::new();
    for &sc in scenarios {
        if sc == Scenario::ClusterLatency {
            for &rate in &settings.cluster.rates {
                let mut one = settings.clone();
                one.cluster.rates = vec![rate];
                jobs.push((sc, one));
            }
        } else {
            jobs.push((sc, settings.clone()));
        }
    }
    jobs
}

/// Runs `scenarios` (cluster scenarios) on `rt`; returns their reports.
/// Fails only if a cluster cannot be started.
pub fn run_scenarios(
    inv: &Invocation<'_>,
    rt: &tokio::runtime::Runtime,
    scenarios: &[Scenario],
) -> Result<Vec<Report>> {
    let mut started: Option<ManagedCluster> = None;
    let mut reports = Vec::new();
    for (sc, settings) in jobs(scenarios, inv.settings) {
        if started.is_none() || !inv.args.reuse_broker {
            if let Some(c) = started.take() {
                stop(c, &mut reports);
            }
            started = start(inv)?;
        }
        let target = match &started {
            Some(c) => c.target()?,
            None => ClusterTarget::external(
                &settings.cluster.external_tcp,
                settings.cluster.external_kafka.as_deref(),
            )?,
        };
        let ctx = Ctx {
            settings,
            endpoints: target.nodes[0].clone(),
            broker_pid: None,
            run_id: inv.run_id.to_owned(),
            base: inv.base,
            broker_binary: inv.args.start_broker.clone(),
            cluster: Some(target),
        };
        let mut got = run_one(inv, rt, &ctx, sc);
        if let (Some(c), Some(last)) = (started.as_mut(), got.last_mut()) {
            if let Err(e) = c.check_alive() {
                last.problem(format!("{e:#}"));
            }
        }
        reports.append(&mut got);
    }
    if let Some(c) = started.take() {
        stop(c, &mut reports);
    }
    Ok(reports)
}

/// Starts a cluster, if this invocation starts them.
fn start(inv: &Invocation<'_>) -> Result<Option<ManagedCluster>> {
    let cs = &inv.settings.cluster;
    Ok(match &inv.args.start_broker {
        Some(binary) => {
            eprintln!(
                "[cluster] starting Tansu ({}) and {} nodes ...",
                cs.tansu.display(),
                cs.nodes
            );
            let c = ManagedCluster::start(binary, cs, inv.run_id)?;
            eprintln!(
                "[cluster] ready in {:.1} s: Kafka at {}, nodes {}",
                c.start_secs,
                c.tansu.bootstrap,
                c.nodes
                    .iter()
                    .map(|n| n.tcp_url.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            Some(c)
        }
        None => None,
    })
}

/// Stops a cluster; what went wrong goes to the last report.
fn stop(c: ManagedCluster, reports: &mut [Report]) {
    eprintln!(
        "[cluster] stopping (Kafka storage {:.1} MiB)",
        c.tansu.storage_bytes() as f64 / (1024.0 * 1024.0)
    );
    let problems = c.stop();
    match reports.last_mut() {
        Some(last) => problems.into_iter().for_each(|p| last.problem(p)),
        None => problems.iter().for_each(|p| eprintln!("warning: {p}")),
    }
}

/// Runs one job within the hard limit.
fn run_one(
    inv: &Invocation<'_>,
    rt: &tokio::runtime::Runtime,
    ctx: &Ctx,
    sc: Scenario,
) -> Vec<Report> {
    eprintln!(
        "[{}] {} across the cluster ...",
        sc.name(),
        if inv.settings.quick {
            "quick run"
        } else {
            "run"
        }
    );
    let got = rt.block_on(async {
        match tokio::time::timeout(inv.hard_limit, scenario::run(ctx, sc, TransportKind::Tcp)).await
        {
            Ok(r) => r,
            Err(_) => {
                let mut r = Report::new(sc.name(), "tcp");
                r.problem(format!(
                    "did not finish within {} s (hang?)",
                    inv.hard_limit.as_secs()
                ));
                vec![r]
            }
        }
    });
    for r in &got {
        eprintln!(
            "[{}] {}{}",
            sc.name(),
            r.result_text(),
            if r.ok { "" } else { " — FAILED" }
        );
    }
    got
}

/// Splits `scenarios` into single-broker and cluster ones (order kept).
pub fn split(scenarios: &[Scenario]) -> (Vec<Scenario>, Vec<Scenario>) {
    scenarios.iter().partition(|s| !s.is_cluster())
}
