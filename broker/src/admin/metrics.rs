//! `/metrics`: the broker's counters in the Prometheus text format
//! (version 0.0.4). `docs/metrics.md` documents every metric.

use crate::broker::Shared;
use crate::stats::{DestinationKind, HistogramSnapshot, MessageEvent, Transport};
use std::fmt::Write as _;
use stompede_codec::Command;

/// Renders every metric.
pub(crate) async fn render(shared: &Shared) -> String {
    let store = shared.router.queues.store();
    let store_size = tokio::task::spawn_blocking(move || store.size_bytes())
        .await
        .unwrap_or(0);
    let s = &shared.stats;
    let mut out = Out(String::with_capacity(16 * 1024));

    // Connections.
    out.family(
        "connections_accepted_total",
        "counter",
        "Connections accepted, by transport.",
    );
    for t in Transport::ALL {
        out.labelled(
            "connections_accepted_total",
            "transport",
            t.label(),
            s.connections_accepted_on(t),
        );
    }
    out.family(
        "connections_refused_total",
        "counter",
        "Connections refused at max_connections, by transport.",
    );
    for t in Transport::ALL {
        out.labelled(
            "connections_refused_total",
            "transport",
            t.label(),
            s.connections_refused_on(t),
        );
    }
    out.family(
        "connections_open",
        "gauge",
        "Connections open now, by transport.",
    );
    for t in Transport::ALL {
        out.labelled(
            "connections_open",
            "transport",
            t.label(),
            s.connections_open_on(t),
        );
    }
    out.single(
        "sessions",
        "gauge",
        "Sessions past CONNECT (as listed by /api/connections).",
        shared.sessions.len() as u64,
    );

    // Frames and bytes.
    out.family(
        "frames_received_total",
        "counter",
        "Frames read from clients, by command.",
    );
    for c in Command::ALL {
        out.labelled(
            "frames_received_total",
            "command",
            c.as_str(),
            s.frames_in(c),
        );
    }
    out.family(
        "frames_sent_total",
        "counter",
        "Frames written to clients, by command.",
    );
    for c in Command::ALL {
        out.labelled("frames_sent_total", "command", c.as_str(), s.frames_out(c));
    }
    out.single(
        "bytes_received_total",
        "counter",
        "Frame bytes read from clients.",
        s.bytes_in(),
    );
    out.single(
        "bytes_sent_total",
        "counter",
        "Frame bytes written to clients.",
        s.bytes_out(),
    );

    // Messages by destination kind.
    for event in MessageEvent::ALL {
        let name = format!("messages_{}_total", event.name());
        out.family(&name, "counter", event_help(event));
        for kind in DestinationKind::ALL {
            out.labelled(&name, "kind", kind.label(), s.message_count(kind, event));
        }
    }
    out.single(
        "queue_overflows_total",
        "counter",
        "Messages refused or dropped by a queue's overflow policy.",
        s.queue_overflows.get(),
    );
    out.single(
        "slow_consumer_drops_total",
        "counter",
        "Topic messages dropped from slow subscribers.",
        s.slow_consumer_drops.get(),
    );
    out.single(
        "slow_consumer_disconnects_total",
        "counter",
        "Slow subscribers disconnected.",
        s.slow_consumer_disconnects.get(),
    );
    out.single(
        "errors_sent_total",
        "counter",
        "ERROR frames sent.",
        s.errors_sent.get(),
    );

    // Queues.
    // Only the deepest queues get their own series, which bounds the
    // cardinality however many queues exist; the totals cover all queues.
    let top_n = shared.config.admin.metrics_top_queues;
    let depths = shared.router.queues.depths(top_n);
    out.single(
        "queues",
        "gauge",
        "Queues with an actor (in use or holding messages).",
        shared.router.queues.len() as u64,
    );
    out.family(
        "queue_depth",
        "gauge",
        &format!("Ready messages of the {top_n} deepest queues."),
    );
    for q in &depths.top {
        out.labelled("queue_depth", "queue", &q.name, q.ready);
    }
    out.family(
        "queue_unacked",
        "gauge",
        "Unacknowledged deliveries of the queues in stompede_queue_depth.",
    );
    for q in &depths.top {
        out.labelled("queue_unacked", "queue", &q.name, q.unacked);
    }
    out.single(
        "queues_depth",
        "gauge",
        "Ready messages over all queues.",
        depths.ready,
    );
    out.single(
        "queues_ready_bytes",
        "gauge",
        "Body bytes of the ready messages over all queues.",
        depths.ready_bytes,
    );
    out.single(
        "queues_unacked",
        "gauge",
        "Unacknowledged deliveries over all queues.",
        depths.unacked,
    );
    out.single(
        "queues_consumers",
        "gauge",
        "Consumers over all queues.",
        depths.consumers,
    );

    // Store and latencies.
    out.single(
        "store_size_bytes",
        "gauge",
        "Bytes the store occupies on disk (0 for the memory store).",
        store_size,
    );
    out.histogram(
        "store_fsync_seconds",
        "Duration of each store sync (group commit).",
        &shared.router.queues.fsync_latency(),
    );
    out.histogram(
        "delivery_latency_seconds",
        "Time from a message's publication to its MESSAGE frame being written.",
        &s.delivery_latency(),
    );
    // Cluster (Kafka bridge).
    if let Some(bridge) = &shared.cluster {
        let g = bridge.gauges();
        out.single(
            "cluster_kafka_reachable",
            "gauge",
            "1 while Kafka answers this node's probes.",
            u64::from(g.reachable),
        );
        out.single(
            "cluster_ready",
            "gauge",
            "1 while the node is ready: Kafka reachable and the cluster topics present.",
            u64::from(g.ready),
        );
        out.single(
            "cluster_kafka_buffered",
            "gauge",
            "Records waiting for Kafka's acknowledgement (bounded by buffer_max_messages).",
            g.buffered,
        );
        out.single(
            "cluster_queue_unsettled",
            "gauge",
            "Queue records this node took from its Kafka partitions and not yet settled (the \
             node's share of the queue group's lag).",
            g.queue_unsettled,
        );
        out.single(
            "cluster_queue_partitions",
            "gauge",
            "Partitions of the queue stream this node owns in the consumer group.",
            g.queue_partitions,
        );
        out.single(
            "cluster_topic_partitions",
            "gauge",
            "Partitions of the topic stream this node reads: those its subscribers need (the others are paused).",
            g.topic_partitions,
        );
        out.single(
            "cluster_records_in_total",
            "counter",
            "Topic and queue records read from Kafka and delivered on this node.",
            g.records_in,
        );
    }
    // Plugins (chat rooms, online users, ...).
    for plugin in &shared.plugins.all {
        for gauge in plugin.metrics() {
            out.single(gauge.name, "gauge", gauge.help, gauge.value);
        }
    }
    out.0
}

fn event_help(event: MessageEvent) -> &'static str {
    match event {
        MessageEvent::Published => "Messages routed from SEND frames, by destination kind.",
        MessageEvent::Delivered => "MESSAGE frames written to clients, by destination kind.",
        MessageEvent::Acked => "Deliveries acknowledged, by destination kind.",
        MessageEvent::Nacked => "Deliveries refused with NACK, by destination kind.",
        MessageEvent::Redelivered => "Messages put back for redelivery, by destination kind.",
        MessageEvent::DeadLettered => {
            "Messages moved to a dead-letter queue, by destination kind."
        }
        MessageEvent::Expired => "Messages expired before delivery, by destination kind.",
        MessageEvent::Dropped => {
            "Messages discarded (slow consumer, overflow drop-oldest, no dead-letter queue), by destination kind."
        }
    }
}

/// The text being built. Writing to a `String` cannot fail, so the
/// `fmt::Result`s are ignored.
struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(
            self.0,
            "# HELP stompede_{name} {help}\n# TYPE stompede_{name} {kind}"
        );
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.family(name, kind, help);
        let _ = writeln!(self.0, "stompede_{name} {value}");
    }

    fn labelled(&mut self, name: &str, label: &str, value: &str, n: u64) {
        let _ = write!(self.0, "stompede_{name}{{{label}=\"");
        escape_label(value, &mut self.0);
        let _ = writeln!(self.0, "\"}} {n}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let mut cumulative = 0u64;
        for (bound, n) in &h.buckets {
            cumulative += n;
            if *bound == u64::MAX {
                let _ = writeln!(self.0, "stompede_{name}_bucket{{le=\"+Inf\"}} {cumulative}");
            } else {
                let le = *bound as f64 / 1e9;
                let _ = writeln!(self.0, "stompede_{name}_bucket{{le=\"{le}\"}} {cumulative}");
            }
        }
        let sum = h.sum_ns as f64 / 1e9;
        let _ = writeln!(self.0, "stompede_{name}_sum {sum}");
        let _ = writeln!(self.0, "stompede_{name}_count {cumulative}");
    }
}

/// Escapes a label value: backslash, double quote and line feed.
fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Histogram;
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Out(String::new());
        out.labelled("queue_depth", "queue", "/queue/a\"b\\c\nd", 3);
        assert_eq!(
            out.0,
            "stompede_queue_depth{queue=\"/queue/a\\\"b\\\\c\\nd\"} 3\n"
        );
    }

    #[test]
    fn histograms_render_cumulative_buckets() {
        static BOUNDS: [u64; 3] = [1_000, 2_500_000, u64::MAX];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_nanos(500));
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(3));
        let mut out = Out(String::new());
        out.histogram("x_seconds", "X.", &h.snapshot());
        assert!(out.0.contains("# TYPE stompede_x_seconds histogram\n"));
        assert!(out
            .0
            .contains("stompede_x_seconds_bucket{le=\"0.000001\"} 1\n"));
        assert!(out
            .0
            .contains("stompede_x_seconds_bucket{le=\"0.0025\"} 2\n"));
        assert!(out.0.contains("stompede_x_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.0.contains("stompede_x_seconds_count 3\n"));
        assert!(out.0.contains("stompede_x_seconds_sum 3.002"));
    }
}
