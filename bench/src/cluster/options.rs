//! Command-line options of the cluster scenarios and the settings they
//! resolve to.

use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

/// Options of the cluster scenarios (`cluster-1to1`, `cluster-fanout`,
/// `cluster-latency`).
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// With --start-broker: the Tansu binary (the Kafka-protocol server
    /// started for the cluster scenarios) [default: `$TANSU_BIN`, else
    /// `$STOMPEDE_CACHE/tansu/bin/tansu`, else
    /// `~/.cache/stompede/tansu/bin/tansu`].
    #[arg(long, value_name = "PATH")]
    pub tansu: Option<PathBuf>,
    /// With --start-broker: cluster nodes to start (at least 2). Node 1
    /// publishes; node 2 subscribes (1→1, latency); fan-out subscribers are
    /// spread over nodes 2.. .
    #[arg(long, default_value_t = 3)]
    pub cluster_nodes: usize,
    /// With --start-broker: `[cluster] partitions` of the nodes (and of the
    /// bare Kafka round trip's topic).
    #[arg(long, default_value_t = 6)]
    pub cluster_partitions: u32,
    /// Without --start-broker: the STOMP TCP addresses of running cluster
    /// nodes, comma-separated (`tcp://host:port,...`; the first publishes).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub cluster_tcp: Vec<String>,
    /// Without --start-broker: the Kafka bootstrap address of that cluster
    /// (`host:port`), for the bare rdkafka round trip.
    #[arg(long, value_name = "HOST:PORT")]
    pub kafka: Option<String>,
    /// librdkafka `linger.ms` of the started nodes (`[cluster] linger_ms`)
    /// and of the bare round trip's producer (default: the broker's).
    #[arg(long, default_value_t = 1)]
    pub kafka_linger_ms: u32,
    /// librdkafka `fetch.wait.max.ms` of the started nodes (`[cluster]
    /// fetch_wait_max_ms`) and of the bare round trip's consumer (default:
    /// the broker's).
    #[arg(long, default_value_t = 5)]
    pub kafka_fetch_wait_ms: u32,
    /// cluster-1to1: messages to send [default: 20000; quick 3000].
    #[arg(long)]
    pub cluster_messages: Option<u64>,
    /// cluster-fanout: messages to send [default: 5000; quick 500].
    #[arg(long)]
    pub cluster_fanout_messages: Option<u64>,
    /// cluster-fanout: subscriptions [default: 100; quick 20].
    #[arg(long)]
    pub cluster_subscribers: Option<usize>,
    /// cluster-fanout: subscriber connections, spread round-robin over
    /// nodes 2.. [default: 10; quick 4].
    #[arg(long)]
    pub cluster_fanout_connections: Option<usize>,
    /// cluster-latency: publish rates in msgs/s, comma-separated; one
    /// result per rate [default: 1000,10000].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub cluster_rate: Vec<u64>,
    /// cluster-latency: seconds of publishing per rate, for each of the
    /// two paths [default: 5; quick 1].
    #[arg(long)]
    pub cluster_secs: Option<f64>,
    /// cluster-latency: leading seconds left out of the percentiles
    /// [default: 1; quick 0.3].
    #[arg(long)]
    pub cluster_warmup_secs: Option<f64>,
}

/// Resolved cluster settings.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSettings {
    /// The Tansu binary.
    pub tansu: PathBuf,
    /// Nodes to start.
    pub nodes: usize,
    /// Partitions per Kafka topic.
    pub partitions: u32,
    /// Running nodes' STOMP addresses (no --start-broker).
    pub external_tcp: Vec<String>,
    /// Running cluster's Kafka (no --start-broker).
    pub external_kafka: Option<String>,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `fetch.wait.max.ms`.
    pub fetch_wait_ms: u32,
    /// cluster-1to1 messages.
    pub messages: u64,
    /// cluster-fanout messages.
    pub fanout_messages: u64,
    /// cluster-fanout subscriptions.
    pub subscribers: usize,
    /// cluster-fanout connections.
    pub fanout_connections: usize,
    /// cluster-latency rates.
    pub rates: Vec<u64>,
    /// cluster-latency publishing time per rate and path (s).
    pub secs: f64,
    /// cluster-latency warm-up (s).
    pub warmup_secs: f64,
}

impl ClusterArgs {
    /// Applies defaults (full or `quick`) to unset options.
    pub fn settings(&self, quick: bool) -> ClusterSettings {
        let pick = |v: Option<u64>, full: u64, q: u64| v.unwrap_or(if quick { q } else { full });
        let pick_u =
            |v: Option<usize>, full: usize, q: usize| v.unwrap_or(if quick { q } else { full });
        let pick_f = |v: Option<f64>, full: f64, q: f64| v.unwrap_or(if quick { q } else { full });
        let rates: Vec<u64> = match self.cluster_rate.is_empty() {
            true => vec![1000, 10_000],
            false => self.cluster_rate.iter().map(|&r| r.max(1)).collect(),
        };
        ClusterSettings {
            tansu: self.tansu.clone().unwrap_or_else(default_tansu),
            nodes: self.cluster_nodes.max(2),
            partitions: self.cluster_partitions.max(1),
            external_tcp: self.cluster_tcp.clone(),
            external_kafka: self.kafka.clone(),
            linger_ms: self.kafka_linger_ms,
            fetch_wait_ms: self.kafka_fetch_wait_ms,
            messages: pick(self.cluster_messages, 20_000, 3_000).max(1),
            fanout_messages: pick(self.cluster_fanout_messages, 5_000, 500).max(1),
            subscribers: pick_u(self.cluster_subscribers, 100, 20).max(1),
            fanout_connections: pick_u(self.cluster_fanout_connections, 10, 4).max(1),
            rates,
            secs: pick_f(self.cluster_secs, 5.0, 1.0).max(0.1),
            warmup_secs: pick_f(self.cluster_warmup_secs, 1.0, 0.3).max(0.0),
        }
    }
}

/// `$TANSU_BIN`, else the install script's place under the cache
/// (`$STOMPEDE_CACHE`, else `~/.cache/stompede`).
fn default_tansu() -> PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN") {
        return PathBuf::from(bin);
    }
    let cache = std::env::var_os("STOMPEDE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/stompede")))
        .unwrap_or_else(|| PathBuf::from(".cache/stompede"));
    cache.join("tansu/bin/tansu")
}
