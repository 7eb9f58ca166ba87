//! Scenario results: the table and the JSON document.

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    /// Samples in the percentiles (warm-up excluded).
    pub samples: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencyStats {
    /// Percentiles of `samples_ns` (sorted in place).
    pub fn from_ns(samples_ns: &mut [u64]) -> Self {
        samples_ns.sort_unstable();
        let n = samples_ns.len();
        if n == 0 {
            return LatencyStats::default();
        }
        let at = |q: f64| -> f64 {
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            samples_ns[rank - 1] as f64 / 1000.0
        };
        let sum: u128 = samples_ns.iter().map(|&v| u128::from(v)).sum();
        LatencyStats {
            samples: n as u64,
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: samples_ns[n - 1] as f64 / 1000.0,
            mean_us: sum as f64 / n as f64 / 1000.0,
        }
    }
}

/// Latency scenario details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyReport {
    /// Target publish rate (msgs/s).
    pub rate: u64,
    /// Achieved publish rate (msgs/s).
    pub achieved_rate: f64,
    /// From the scheduled send time (no coordinated omission): the result.
    pub from_scheduled: LatencyStats,
    /// From the moment the producer actually wrote the frame.
    pub from_actual_send: LatencyStats,
    /// How much later than scheduled messages were written, p99 (µs):
    /// timer wake-up delay, descheduling, and TCP backpressure.
    pub producer_lag_p99_us: f64,
}

/// cluster-latency details: the bare Kafka round trip measured in the same
/// run, and how much the cluster adds to it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClusterLatencyReport {
    /// Publish rate of both paths (msgs/s).
    pub rate: u64,
    /// Bare rdkafka produce → consume, from the scheduled send time.
    pub kafka: LatencyStats,
    /// Bare rdkafka, from the moment the record was handed to the producer.
    pub kafka_from_actual_send: LatencyStats,
    /// Records the bare producer sent.
    pub kafka_sent: u64,
    /// Records the bare consumer received.
    pub kafka_received: u64,
    /// Cross-node p99 minus bare Kafka p99 (ms; both from the scheduled
    /// time).
    pub p99_difference_ms: f64,
    /// `linger.ms` of both paths.
    pub linger_ms: u32,
    /// `fetch.wait.max.ms` of both paths.
    pub fetch_wait_max_ms: u32,
}

/// Idle-connections scenario details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IdleReport {
    /// Connections opened.
    pub connections: u64,
    /// Seconds to open, CONNECT and SUBSCRIBE all of them.
    pub connect_secs: f64,
    /// Broker RSS before (KiB).
    pub rss_before_kib: Option<u64>,
    /// Broker RSS with all connections open (KiB).
    pub rss_after_kib: Option<u64>,
    /// (after − before) / connections (KiB).
    pub rss_per_connection_kib: Option<f64>,
    /// Broker RSS one second after the connections were closed (KiB).
    pub rss_after_close_kib: Option<u64>,
    /// Connections that received the liveness message.
    pub live_connections: u64,
    /// Listen-queue overflows the kernel counted while connecting
    /// (system-wide `TcpExt: ListenOverflows` delta).
    pub listen_overflows: Option<u64>,
}

/// persistent-queue details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PersistentReport {
    /// RECEIPTs received (one per SEND).
    pub receipts: u64,
    /// From writing a SEND to reading its RECEIPT (the broker sends it once
    /// the message is durable).
    pub receipt_latency: LatencyStats,
    /// SENDs confirmed per second (first SEND to last RECEIPT).
    pub confirmed_rate: f64,
    /// Deliveries of an already consumed message, flagged `redelivered`.
    pub flagged_duplicates: u64,
    /// The `[store] fsync` of the started broker, if this tool started it.
    pub fsync: Option<String>,
}

/// recovery details.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecoveryReport {
    /// Persistent messages in the queue when the broker was stopped.
    pub messages: u64,
    /// Seconds to fill the queue (last RECEIPT included).
    pub fill_secs: f64,
    /// Messages stored per second while filling.
    pub fill_rate: f64,
    /// Store size on disk after the fill (bytes).
    pub store_bytes: u64,
    /// Broker RSS after the fill (KiB).
    pub rss_before_kib: Option<u64>,
    /// SIGTERM to exit (s).
    pub stop_secs: f64,
    /// Restart: process spawn until the TCP port accepts connections (s).
    pub listen_secs: f64,
    /// Restart: spawn until the `store recovered` log line was seen (s).
    pub log_line_secs: Option<f64>,
    /// `elapsed_ms` of that line: reading and decoding the store, and
    /// rebuilding the queues (sled's open is before it).
    pub recover_ms: Option<u64>,
    /// `messages` of that line.
    pub recovered: Option<u64>,
    /// Broker RSS after the restart (KiB).
    pub rss_after_kib: Option<u64>,
    /// SUBSCRIBE receipt to first MESSAGE after the restart (ms).
    pub first_message_ms: f64,
    /// Messages read and checked after the restart.
    pub verified: u64,
    /// How many of those carried `redelivered:true`.
    pub verified_redelivered: u64,
}

/// Chat scenario details (each fills what it measures).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChatReport {
    /// chat-history: messages posted to the room.
    pub room_messages: u64,
    /// Seconds it took to fill the room (chat-resume: all rounds' posts).
    pub fill_secs: Option<f64>,
    /// Posts stored per second while filling.
    pub fill_rate: Option<f64>,
    /// chat-history: the filled store came from the cache.
    pub fill_cached: bool,
    /// chat-history: bytes of the data directory.
    pub store_bytes: Option<u64>,
    /// chat-history: pages requested.
    pub pages: u64,
    /// chat-history: events per page.
    pub page_size: u64,
    /// chat-history: request → last event of the page (the result).
    pub page_last_event: Option<LatencyStats>,
    /// chat-history: request → `history-end`.
    pub page_end: Option<LatencyStats>,
    /// Missed messages per resume.
    pub resume_missed: u64,
    /// SUBSCRIBE → `replay-end`, per resume (s).
    pub resume_secs: Vec<f64>,
    /// SUBSCRIBE → first replayed MESSAGE, per resume (ms).
    pub resume_first_ms: Vec<f64>,
    /// chat-fanout: subscribed members.
    pub members: u64,
    /// chat-fanout: posting connections.
    pub publishers: u64,
    /// chat-fanout: posts.
    pub posts: u64,
}

/// The outcome of one scenario over one transport.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `tcp` or `ws`.
    pub transport: String,
    /// No loss, duplicate, reordering or failure.
    pub ok: bool,
    /// What went wrong (empty when ok).
    pub problems: Vec<String>,
    /// Remarks that are not failures (e.g. stopped by the time bound).
    pub notes: Vec<String>,
    /// The headline metric's name.
    pub metric: String,
    /// The headline value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The project's target, as text.
    pub target: String,
    /// Whether the target was met (None when not measured).
    pub target_met: Option<bool>,
    /// Messages published.
    pub messages_sent: u64,
    /// Deliveries received, over all subscriptions/consumers.
    pub deliveries: u64,
    /// Subscriptions or consumers.
    pub subscribers: u64,
    /// Connections used (producers included).
    pub connections: u64,
    /// Measured interval (s): first send to last delivery (or last ack).
    pub elapsed_secs: f64,
    /// messages_sent / elapsed.
    pub publish_rate: f64,
    /// deliveries / elapsed.
    pub delivery_rate: f64,
    /// Latency details.
    pub latency: Option<LatencyReport>,
    /// Idle-connection details.
    pub idle: Option<IdleReport>,
    /// persistent-queue details.
    pub persistent: Option<PersistentReport>,
    /// recovery details.
    pub recovery: Option<RecoveryReport>,
    /// chat scenario details.
    pub chat: Option<ChatReport>,
    /// cluster-latency details.
    pub cluster: Option<ClusterLatencyReport>,
    /// Broker CPU seconds during the measured interval.
    pub broker_cpu_secs: Option<f64>,
    /// This tool's CPU seconds during the measured interval.
    pub bench_cpu_secs: f64,
    /// Broker RSS at the end of the scenario (KiB).
    pub broker_rss_kib: Option<u64>,
}

impl Report {
    /// An empty report for `scenario` over `transport`.
    pub fn new(scenario: &str, transport: &str) -> Self {
        Report {
            scenario: scenario.to_owned(),
            transport: transport.to_owned(),
            ok: true,
            ..Report::default()
        }
    }

    /// Records a failure.
    pub fn problem(&mut self, p: impl Into<String>) {
        self.ok = false;
        self.problems.push(p.into());
    }

    /// The headline value as text.
    pub fn result_text(&self) -> String {
        if let (Some(c), Some(l)) = (&self.cluster, &self.latency) {
            return format!(
                "{}/s: p50 {:.2} / p99 {:.2} ms; kafka p50 {:.2} / p99 {:.2} ms; Δp99 {:+.2} ms",
                fmt_num(c.rate as f64),
                l.from_scheduled.p50_us / 1e3,
                l.from_scheduled.p99_us / 1e3,
                c.kafka.p50_us / 1e3,
                c.kafka.p99_us / 1e3,
                c.p99_difference_ms
            );
        }
        if let Some(l) = &self.latency {
            return format!(
                "p50 {} / p99 {} / p99.9 {} µs",
                fmt_num(l.from_scheduled.p50_us),
                fmt_num(l.from_scheduled.p99_us),
                fmt_num(l.from_scheduled.p999_us)
            );
        }
        if let Some(i) = &self.idle {
            let per = i
                .rss_per_connection_kib
                .map_or("n/a".to_owned(), |v| format!("{v:.1}"));
            return format!(
                "{per} KiB/conn, {:.2} s for {}",
                i.connect_secs, i.connections
            );
        }
        if let Some(r) = &self.recovery {
            return format!(
                "{:.2} s to listen ({} msgs, recover {} ms)",
                r.listen_secs,
                fmt_num(r.messages as f64),
                r.recover_ms.map_or("n/a".to_owned(), |v| v.to_string())
            );
        }
        if let Some(c) = &self.chat {
            if let Some(l) = &c.page_last_event {
                return format!(
                    "page p99 {:.3} ms (p50 {:.3}, {} pages)",
                    l.p99_us / 1e3,
                    l.p50_us / 1e3,
                    c.pages
                );
            }
            if self.scenario == "chat-resume" && !c.resume_secs.is_empty() {
                let max = c.resume_secs.iter().copied().fold(0.0, f64::max);
                return format!(
                    "{:.3} s median, {:.3} s max ({} missed)",
                    self.value,
                    max,
                    fmt_num(c.resume_missed as f64)
                );
            }
        }
        format!("{} {}", fmt_num(self.value), self.unit)
    }
}

/// The JSON document `--json` prints.
#[derive(Debug, Serialize)]
pub struct Document<'a, S: Serialize> {
    /// `stompede-bench`.
    pub tool: &'static str,
    /// Its version.
    pub version: &'static str,
    /// When the run started (seconds since the Unix epoch).
    pub unix_time: u64,
    /// CPU cores available.
    pub cores: usize,
    /// The broker binary started with `--start-broker`, if any.
    pub started_broker: Option<&'a std::path::Path>,
    /// The settings used.
    pub settings: &'a S,
    /// No scenario failed.
    pub ok: bool,
    /// No scenario missed its target.
    pub targets_met: bool,
    /// One entry per scenario and transport.
    pub results: &'a [Report],
}

/// Formats with thousands separators (no decimals above 100).
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.abs() < 100.0 {
        return format!("{v:.1}");
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// The human-readable table.
pub fn table(reports: &[Report]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "scenario".into(),
        "transport".into(),
        "result".into(),
        "target".into(),
        "elapsed".into(),
        "cpu broker/bench".into(),
        "check".into(),
    ]];
    for r in reports {
        let met = match r.target_met {
            Some(true) => " (met)",
            Some(false) => " (MISSED)",
            None => "",
        };
        let cpu = match r.broker_cpu_secs {
            Some(b) if r.elapsed_secs > 0.0 => format!(
                "{:.0}% / {:.0}%",
                100.0 * b / r.elapsed_secs,
                100.0 * r.bench_cpu_secs / r.elapsed_secs
            ),
            _ if r.elapsed_secs > 0.0 => {
                format!("n/a / {:.0}%", 100.0 * r.bench_cpu_secs / r.elapsed_secs)
            }
            _ => "n/a".into(),
        };
        rows.push([
            r.scenario.clone(),
            r.transport.clone(),
            r.result_text(),
            format!("{}{met}", r.target),
            format!("{:.2} s", r.elapsed_secs),
            cpu,
            if r.ok { "ok".into() } else { "FAILED".into() },
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    for r in reports {
        for p in &r.problems {
            out.push_str(&format!(
                "  {} [{}] PROBLEM: {p}\n",
                r.scenario, r.transport
            ));
        }
        for n in &r.notes {
            out.push_str(&format!("  {} [{}] note: {n}\n", r.scenario, r.transport));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_percentiles() {
        assert_eq!(fmt_num(1_234_567.4), "1,234,567");
        assert_eq!(fmt_num(999.0), "999");
        assert_eq!(fmt_num(12.34), "12.3");
        let mut v: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let s = LatencyStats::from_ns(&mut v);
        assert_eq!(s.p50_us, 500.0);
        assert_eq!(s.p99_us, 990.0);
        assert_eq!(s.p999_us, 999.0);
        assert_eq!(s.max_us, 1000.0);
    }

    #[test]
    fn table_lists_problems() {
        let mut r = Report::new("topic-1to1", "tcp");
        r.value = 500_000.0;
        r.unit = "msgs/s".into();
        r.problem("lost 3");
        let t = table(&[r]);
        assert!(t.contains("500,000 msgs/s"));
        assert!(t.contains("PROBLEM: lost 3"));
        assert!(t.contains("FAILED"));
    }
}
