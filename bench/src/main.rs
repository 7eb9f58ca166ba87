//! The `stompede-bench` command.

use anyhow::{Context, Result};
use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stompede_bench::broker::{raise_fd_limit, store_config, ManagedBroker};
use stompede_bench::cli::{Args, Scenario};
use stompede_bench::cluster::run::{run_scenarios, split, Invocation};
use stompede_bench::conn::Endpoints;
use stompede_bench::report::{table, Document, Report};
use stompede_bench::scenario::{self, Ctx};
use stompede_bench::{procfs, scan};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("stompede-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool> {
    let settings = args.settings();
    if args.measure_parsers {
        let (fast, codec) = scan::measure_parsers(2000)?;
        println!(
            "parsing MESSAGE frames (100-byte bodies, 1000 per read): scanner {fast:.1} ns/frame, \
             stompede-codec {codec:.1} ns/frame"
        );
        return Ok(true);
    }
    let (scenarios, cluster_scenarios) = split(&args.scenario_list());
    if args.start_broker.is_some() {
        stompede_bench::cleanup::install_signal_handler();
    }
    let fd_limit = raise_fd_limit();
    if scenarios.contains(&Scenario::IdleConnections)
        && fd_limit < settings.idle_connections as u64 + 256
    {
        eprintln!(
            "warning: open-file limit {fd_limit} is too low for {} connections \
             (raise the hard limit: ulimit -Hn 65536)",
            settings.idle_connections
        );
    }
    let rt = if settings.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    }
    .context("start the runtime")?;
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let run_id = format!("{}-{unix_time}", std::process::id());
    let base = Instant::now();
    let hard_limit = Duration::from_secs_f64(settings.max_secs + 3.0 * settings.drain_secs + 120.0);

    // The started broker, and whether its store is on disk.
    let mut managed: Option<(ManagedBroker, bool)> = None;
    let mut reports: Vec<Report> = Vec::new();
    for &sc in &scenarios {
        for transport in args.transports_for(sc) {
            let (endpoints, broker_pid) = match &args.start_broker {
                // Recovery starts (and restarts) its own; so do the chat
                // scenarios (on-disk store, [chat] configuration).
                Some(_) if sc.starts_own_broker() => {
                    if let Some((b, _)) = managed.take() {
                        b.stop()?;
                    }
                    (Endpoints::parse(&args.tcp, &args.ws)?, None)
                }
                Some(path) => {
                    let b = match managed.take() {
                        Some((b, on_disk)) if on_disk == sc.needs_disk() => b,
                        other => {
                            if let Some((b, _)) = other {
                                b.stop()?;
                            }
                            if sc.needs_disk() {
                                let config = store_config(
                                    settings.fsync.as_str(),
                                    settings.fsync_interval_ms,
                                );
                                ManagedBroker::start_on_disk(path, &run_id, &config)?
                            } else {
                                ManagedBroker::start(path, &run_id)?
                            }
                        }
                    };
                    let ep = Endpoints::parse(&b.tcp_url, &b.ws_url)?;
                    let pid = b.pid;
                    managed = Some((b, sc.needs_disk()));
                    (ep, Some(pid))
                }
                None => {
                    let ep = Endpoints::parse(&args.tcp, &args.ws)?;
                    let pid = args.broker_pid.or_else(|| {
                        Endpoints::port_of(&ep.tcp_addr)
                            .and_then(|port| procfs::pid_listening_on(port).ok())
                    });
                    (ep, pid)
                }
            };
            eprintln!(
                "[{}] {} over {} ...",
                sc.name(),
                if settings.quick { "quick run" } else { "run" },
                transport.as_str()
            );
            let ctx = Ctx {
                settings: settings.clone(),
                endpoints,
                broker_pid,
                run_id: run_id.clone(),
                base,
                broker_binary: args.start_broker.clone(),
                cluster: None,
            };
            let mut got = rt.block_on(async {
                match tokio::time::timeout(hard_limit, scenario::run(&ctx, sc, transport)).await {
                    Ok(r) => r,
                    Err(_) => {
                        let mut r = Report::new(sc.name(), transport.as_str());
                        r.problem(format!(
                            "did not finish within {} s (hang?)",
                            hard_limit.as_secs()
                        ));
                        vec![r]
                    }
                }
            });
            let mut report = match got.pop() {
                Some(r) => r,
                None => {
                    let mut r = Report::new(sc.name(), transport.as_str());
                    r.problem("the scenario reported nothing");
                    r
                }
            };
            reports.append(&mut got);
            if let Some((mut b, on_disk)) = managed.take() {
                match b.check_alive() {
                    Err(e) => report.problem(format!("{e:#}")),
                    Ok(()) if args.reuse_broker => managed = Some((b, on_disk)),
                    Ok(()) => {
                        if !b.stop()? {
                            report.problem("broker did not exit within 10 s of SIGTERM");
                        }
                    }
                }
            }
            eprintln!(
                "[{}] {}: {}{}",
                sc.name(),
                transport.as_str(),
                report.result_text(),
                if report.ok { "" } else { " — FAILED" }
            );
            reports.push(report);
        }
    }
    if let Some((b, _)) = managed.take() {
        if !b.stop()? {
            eprintln!("warning: the broker did not exit within 10 s of SIGTERM");
        }
    }
    if !cluster_scenarios.is_empty() {
        let inv = Invocation {
            args,
            settings: &settings,
            run_id: &run_id,
            base,
            hard_limit: hard_limit
                + Duration::from_secs_f64(
                    4.0 * settings.cluster.secs * settings.cluster.rates.len() as f64,
                ),
        };
        reports.extend(run_scenarios(&inv, &rt, &cluster_scenarios)?);
    }

    let mut text = table(&reports);
    if settings.quick {
        text.push_str("quick run: counts too small to judge against the targets\n");
    }
    let ok = reports.iter().all(|r| r.ok);
    let targets_ok = reports.iter().all(|r| r.target_met != Some(false));
    if args.json {
        eprint!("{text}");
        let doc = Document {
            tool: "stompede-bench",
            version: env!("CARGO_PKG_VERSION"),
            unix_time,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            started_broker: args.start_broker.as_deref(),
            settings: &settings,
            ok,
            targets_met: targets_ok,
            results: &reports,
        };
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{text}");
    }
    Ok(ok && (targets_ok || !args.enforce_targets))
}
