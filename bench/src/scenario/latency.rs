//! `latency`: one producer publishes to a topic at a fixed rate, one
//! subscriber in the same process records how long each message took.
//!
//! * The producer runs on its own OS thread and paces itself with
//!   `std::thread::sleep` (high-resolution timers; a tokio timer would round
//!   to the millisecond). Message `i` is *scheduled* at `start + i / rate`;
//!   when the thread wakes it sends every message that is due, each
//!   stamped with its scheduled time and the actual send time.
//! * Latency is measured from the scheduled time, so a producer held up by
//!   a slow broker (TCP backpressure) or a late timer is not excused: no
//!   coordinated omission. The latency from the actual write is reported
//!   too, to tell broker delay from pacing delay.
//! * Both ends read the same monotonic clock (`Instant`, one base per run).
//! * Messages scheduled during the warm-up are checked for loss and order
//!   but left out of the percentiles.

use super::Ctx;
use crate::body::{parse_stamp, SendTemplate};
use crate::check::SeqCheck;
use crate::conn::TransportKind;
use crate::conn::{disconnect, open, subscribe_all, ConnOpts, Endpoints, OutBatch, SubSpec};
use crate::report::{LatencyReport, LatencyStats, Report};
use crate::scan::Cmd;
use anyhow::{anyhow, bail, Context, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the paced producer did.
#[derive(Debug, Default)]
struct Paced {
    sent: u64,
    start_ns: u64,
    end_ns: u64,
    /// Per message: how much later than scheduled it was written (ns).
    lags: Vec<u64>,
    time_bounded: Option<String>,
    /// Why the timer slack could not be lowered, if it could not.
    slack_error: Option<String>,
}

/// Everything the producer thread needs.
struct PacerSetup {
    endpoints: Endpoints,
    transport: TransportKind,
    opts: ConnOpts,
    destination: String,
    body_size: usize,
    base: Instant,
    rate: u64,
    n: u64,
    max_secs: f64,
    drain: Duration,
    final_sent: Arc<AtomicU64>,
}

/// The producer thread: own current-thread runtime, own connection.
fn pacer(
    p: PacerSetup,
    ready: tokio::sync::oneshot::Sender<Result<()>>,
    go: std::sync::mpsc::Receiver<u64>,
) -> Result<Paced> {
    // Wake as close to each scheduled time as the kernel allows.
    let slack = crate::procfs::set_thread_timer_slack_ns(1).err();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("producer runtime")?;
    let result = rt.block_on(async {
        let mut conn = match open(&p.endpoints, p.transport, &p.opts).await {
            Ok(c) => {
                let _ = ready.send(Ok(()));
                c
            }
            Err(e) => {
                let _ = ready.send(Err(anyhow!("{e:#}")));
                return Err(e);
            }
        };
        let start_ns = go
            .recv()
            .map_err(|_| anyhow!("latency scenario abandoned"))?;
        let template = SendTemplate::new(&p.destination, 0, p.body_size, false);
        let mut out = OutBatch::with_capacity(64 * (template.len() + 32));
        let rate = u128::from(p.rate);
        let sched = |i: u64| start_ns + (u128::from(i) * 1_000_000_000 / rate) as u64;
        let deadline_ns = start_ns + (p.max_secs * 1e9) as u64;
        let mut paced = Paced {
            start_ns,
            slack_error: slack.map(|e| format!("{e:#}")),
            lags: Vec::with_capacity(p.n.min(10_000_000) as usize),
            ..Paced::default()
        };
        let mut i = 0u64;
        while i < p.n {
            let now = p.base.elapsed().as_nanos() as u64;
            if now > deadline_ns {
                paced.time_bounded = Some(format!(
                    "time bound of {} s reached: sent {i} of {} messages",
                    p.max_secs, p.n
                ));
                break;
            }
            let due = sched(i);
            if now < due {
                // Blocking on purpose: this thread does nothing else.
                std::thread::sleep(Duration::from_nanos(due - now));
                continue;
            }
            let mut k = 0;
            while i < p.n && sched(i) <= now && k < 1024 {
                paced.lags.push(now - sched(i));
                template.encode(i, sched(i), now, &mut out.bytes);
                out.end_frame();
                i += 1;
                k += 1;
            }
            conn.writer.send(&mut out).await?;
        }
        paced.sent = i;
        paced.end_ns = p.base.elapsed().as_nanos() as u64;
        p.final_sent.store(i, Ordering::Release);
        disconnect(&mut conn, p.drain, |v| {
            bail!(
                "unexpected frame on the producer connection: {}",
                v.describe()
            )
        })
        .await?;
        Ok(paced)
    });
    if result.is_err() {
        // Unblock the subscriber even if no count was published.
        let _ = p
            .final_sent
            .compare_exchange(u64::MAX, 0, Ordering::AcqRel, Ordering::Acquire);
    }
    result
}

/// What to measure: who connects where, and the pace.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The report's scenario name.
    pub name: &'static str,
    /// Where the producer connects.
    pub producer: Endpoints,
    /// Where the subscriber connects.
    pub subscriber: Endpoints,
    /// The topic.
    pub destination: String,
    /// Messages per second.
    pub rate: u64,
    /// Seconds of publishing.
    pub secs: f64,
    /// Leading seconds left out of the percentiles.
    pub warmup_secs: f64,
}

/// Runs the latency scenario: producer and subscriber on the one broker.
pub async fn run(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let plan = Plan {
        name: "latency",
        producer: ctx.endpoints.clone(),
        subscriber: ctx.endpoints.clone(),
        destination: ctx.destination("topic", "latency", transport),
        rate: s.latency_rate,
        secs: s.latency_secs,
        warmup_secs: s.latency_warmup_secs,
    };
    measure(ctx, transport, plan).await
}

/// Measures latency as `plan` says (see the module documentation).
pub async fn measure(ctx: &Ctx, transport: TransportKind, plan: Plan) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new(plan.name, transport.as_str());
    let rate = plan.rate.max(1);
    let n = ((rate as f64) * plan.secs).round().max(1.0) as u64;
    let dest = plan.destination;
    let mut sub = open(&plan.subscriber, transport, &ctx.conn_opts()).await?;
    subscribe_all(
        &mut sub,
        &[SubSpec {
            id: "s0".into(),
            destination: dest.clone(),
            ack: "auto",
            prefetch: None,
        }],
    )
    .await?;

    let final_sent = Arc::new(AtomicU64::new(u64::MAX));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let setup = PacerSetup {
        endpoints: plan.producer,
        transport,
        opts: ctx.conn_opts(),
        destination: dest,
        body_size: s.body_size,
        base: ctx.base,
        rate,
        n,
        max_secs: s.max_secs,
        drain: ctx.drain(),
        final_sent: Arc::clone(&final_sent),
    };
    let thread = std::thread::Builder::new()
        .name("latency-producer".into())
        .spawn(move || pacer(setup, ready_tx, go_rx))
        .context("spawn the producer thread")?;
    ready_rx
        .await
        .map_err(|_| anyhow!("producer thread ended early"))??;

    let cpu = ctx.cpu_mark();
    // Start a little ahead so the first message is not already late.
    let start_ns = ctx.now_ns() + 1_000_000;
    go_tx
        .send(start_ns)
        .map_err(|_| anyhow!("producer thread ended early"))?;
    let warm_ns = start_ns + (plan.warmup_secs * 1e9) as u64;
    let mut from_sched: Vec<u64> = Vec::with_capacity(n as usize);
    let mut from_actual: Vec<u64> = Vec::with_capacity(n as usize);
    let mut check = SeqCheck::default();
    let mut last_rx_ns = start_ns;
    let mut last_progress = Instant::now();
    let tick = Duration::from_millis(100);
    let outcome: Result<()> = loop {
        let target = final_sent.load(Ordering::Acquire);
        if check.received >= target {
            break Ok(());
        }
        if target != u64::MAX && last_progress.elapsed() > ctx.drain() {
            break Err(anyhow!(
                "no message for {:.1} s after the producer finished",
                ctx.drain().as_secs_f64()
            ));
        }
        match tokio::time::timeout(tick, sub.reader.fill()).await {
            Err(_) => continue,
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break Err(anyhow!("broker closed the subscriber connection")),
            Ok(Err(e)) => break Err(e),
        }
        let now = ctx.now_ns();
        let before = check.received;
        let drained = sub.reader.drain(|v| {
            if v.command != Cmd::Message {
                bail!("unexpected frame: {}", v.describe());
            }
            let st = parse_stamp(v.body)?;
            check.observe(st.seq);
            if st.scheduled_ns >= warm_ns {
                from_sched.push(now.saturating_sub(st.scheduled_ns));
                from_actual.push(now.saturating_sub(st.actual_ns));
            }
            Ok(())
        });
        if let Err(e) = drained {
            break Err(e);
        }
        if check.received > before {
            last_rx_ns = now;
            last_progress = Instant::now();
        }
    };
    cpu.finish(ctx, &mut report);
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| anyhow!("join producer thread: {e}"))?;
    let mut paced = match joined {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            report.problem(format!("producer: {e:#}"));
            Paced::default()
        }
        Err(_) => {
            report.problem("producer thread panicked");
            Paced::default()
        }
    };
    if let Err(e) = outcome {
        report.problem(format!("subscriber: {e:#}"));
    } else if let Err(e) = disconnect(&mut sub, ctx.drain(), |v| {
        check.observe(parse_stamp(v.body).map(|st| st.seq).unwrap_or(u64::MAX));
        Ok(())
    })
    .await
    {
        report.problem(format!("subscriber DISCONNECT: {e:#}"));
    }
    let sent = paced.sent;
    if let Some(p) = check.problem(sent) {
        report.problem(format!("subscription: {p}"));
    }
    if let Some(t) = paced.time_bounded {
        report.notes.push(t);
    }
    if let Some(e) = paced.slack_error {
        report
            .notes
            .push(format!("producer timer slack left at the default: {e}"));
    }
    let sched_stats = LatencyStats::from_ns(&mut from_sched);
    let actual_stats = LatencyStats::from_ns(&mut from_actual);
    let lag_p99 = LatencyStats::from_ns(&mut paced.lags).p99_us;
    let send_secs = paced.end_ns.saturating_sub(paced.start_ns) as f64 / 1e9;
    report.notes.push(format!(
        "{} samples after {:.1} s warm-up; from actual send: p50 {:.1} / p99 {:.1} / p99.9 {:.1} µs; send lateness (actual − scheduled) p99 {:.1} µs",
        sched_stats.samples,
        plan.warmup_secs,
        actual_stats.p50_us,
        actual_stats.p99_us,
        actual_stats.p999_us,
        lag_p99
    ));
    report.metric = "p99 latency".into();
    report.unit = "µs".into();
    report.value = sched_stats.p99_us;
    report.messages_sent = sent;
    report.deliveries = check.received;
    report.subscribers = 1;
    report.connections = 2;
    report.elapsed_secs = last_rx_ns.saturating_sub(start_ns) as f64 / 1e9;
    if report.elapsed_secs > 0.0 {
        report.publish_rate = sent as f64 / report.elapsed_secs;
        report.delivery_rate = check.received as f64 / report.elapsed_secs;
    }
    report.latency = Some(LatencyReport {
        rate,
        achieved_rate: if send_secs > 0.0 {
            sent as f64 / send_secs
        } else {
            0.0
        },
        from_scheduled: sched_stats,
        from_actual_send: actual_stats,
        producer_lag_p99_us: lag_p99,
    });
    if sent < 2 {
        report.problem("the producer sent nothing");
    }
    Ok(report)
}
