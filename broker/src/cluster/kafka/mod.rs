//! The Kafka bridge (feature `kafka`): how this node joins the cluster.
//!
//! | Kafka topic | what | read by |
//! |---|---|---|
//! | `{prefix}.topics` | `/topic/`, `/user/`, `/reply-queue/` messages, keyed and partitioned by destination | every node: the partitions its subscribers need, from when they need them ([`topics`]); durable subscriptions: a consumer group each ([`queues`]) |
//! | `{prefix}.queues` | `/queue/` messages, spread over the partitions | a consumer group per queue, `{prefix}.queues./queue/name`, joined by the nodes with consumers of it: each partition on one of them |
//! | `{prefix}.plugin.{name}` | a plugin's replicated log (chat rooms) | every node, from where its plugin resumes |
//!
//! A node delivers a topic message to its own subscribers only when it
//! comes back from Kafka, so every node delivers one destination's messages
//! in the same (partition) order. While Kafka is unreachable the node
//! delivers its own messages at once and marks the records so that it
//! skips them when they come back (see [`health`]).

mod client;
pub(crate) mod health;
mod log;
mod publish;
pub(crate) mod queues;
mod setup;
mod topics;

pub(crate) use publish::Published;

use crate::broker::Shared;
use crate::config::ClusterConfig;
use client::NodeContext;
use health::Health;
use rdkafka::producer::FutureProducer;
use std::sync::{Arc, Weak};

/// How long a reader pauses after an error from its consumer.
const ERROR_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Kafka header naming the node that appended a plugin log record.
const ORIGIN_HEADER: &str = "stompede-origin";
/// Kafka header set on records the producing node already delivered to its
/// own subscribers (while Kafka was unreachable).
const DELIVERED_HEADER: &str = "stompede-delivered";

/// The Kafka topic names of a cluster.
#[derive(Debug, Clone)]
pub(crate) struct TopicNames {
    pub topics: String,
    pub queues: String,
    prefix: String,
}

impl TopicNames {
    fn new(prefix: &str) -> TopicNames {
        TopicNames {
            topics: format!("{prefix}.topics"),
            queues: format!("{prefix}.queues"),
            prefix: prefix.to_owned(),
        }
    }

    /// The consumer group of durable subscription queue `queue`.
    pub(crate) fn durable_group(&self, queue: &str) -> String {
        format!("{}.durable{queue}", self.prefix)
    }

    /// The Kafka topic of plugin log `name`.
    pub(crate) fn plugin_log(&self, name: &str) -> String {
        format!("{}.plugin.{name}", self.prefix)
    }
}

/// This node's connection to the cluster.
pub(crate) struct KafkaBridge {
    pub(crate) node_id: String,
    pub(crate) names: TopicNames,
    pub(crate) partitions: u32,
    config: ClusterConfig,
    producer: FutureProducer<NodeContext>,
    pub(crate) health: Arc<Health>,
    /// Which topic partitions this node's subscribers need.
    interest: std::sync::OnceLock<Arc<topics::Interest>>,
}

impl KafkaBridge {
    /// Connects to Kafka and creates the topics the node needs (those of
    /// `plugin_logs` too). Fails when Kafka cannot be reached, unless the
    /// configuration says to start degraded.
    pub(crate) async fn connect(
        config: &ClusterConfig,
        plugin_logs: &[String],
    ) -> Result<Arc<KafkaBridge>, String> {
        let node_id = node_id(config);
        let names = TopicNames::new(&config.topic_prefix);
        let health = Arc::new(Health::default());
        let producer = client::producer(config, &node_id, Arc::clone(&health))?;
        let mut wanted = vec![names.topics.clone(), names.queues.clone()];
        wanted.extend(plugin_logs.iter().map(|n| names.plugin_log(n)));
        match setup::ensure_topics(config, &wanted).await {
            Ok(()) => health.set_reachable(true),
            Err(e) if config.start_degraded => {
                tracing::warn!(error = %e, "Kafka is unreachable: starting degraded (not ready)");
                health.set_reachable(false);
                health.set_topics_missing();
                let config = config.clone();
                let health = Arc::clone(&health);
                tokio::spawn(
                    async move { setup::retry_until_created(&config, &wanted, &health).await },
                );
            }
            Err(e) => {
                return Err(format!(
                    "cannot join the cluster through Kafka at {}: {e} (set [cluster] \
                     start_degraded = true to start anyway)",
                    config.bootstrap_servers
                ))
            }
        }
        tracing::info!(node = %node_id, kafka = %config.bootstrap_servers, "joined the cluster");
        Ok(Arc::new(KafkaBridge {
            node_id,
            names,
            partitions: config.partitions.max(1),
            config: config.clone(),
            producer,
            health,
            interest: std::sync::OnceLock::new(),
        }))
    }

    /// Starts reading the topic and queue streams into this node's router,
    /// and the health probe.
    pub(crate) fn start(self: &Arc<Self>, shared: Weak<Shared>) -> Result<(), String> {
        let interest = topics::start(self, shared.clone())?;
        if let Some(shared) = shared.upgrade() {
            shared
                .router
                .topics
                .set_interest(Arc::clone(&interest) as _);
        }
        let _ = self.interest.set(interest);
        queues::start(self, shared.clone())?;
        health::start_probe(self, shared);
        Ok(())
    }

    /// Waits up to `timeout` for the records still buffered for Kafka
    /// (at shutdown, so SENDs without a receipt are not dropped).
    pub(crate) async fn flush(self: &Arc<Self>, timeout: std::time::Duration) {
        use rdkafka::producer::Producer;
        let bridge = Arc::clone(self);
        let flushed = tokio::task::spawn_blocking(move || bridge.producer.flush(timeout)).await;
        if !matches!(flushed, Ok(Ok(()))) {
            tracing::warn!(
                buffered = self.buffered(),
                "records for Kafka left unsent at shutdown"
            );
        }
    }

    /// Waits (bounded) until this node reads the partitions a new
    /// subscription to `key` needs, so the SUBSCRIBE's RECEIPT promises
    /// every message sent after it. Without Kafka there is nothing to wait
    /// for.
    pub(crate) async fn subscribed(&self, key: &str) {
        if let (Some(interest), true) = (self.interest.get(), self.is_reachable()) {
            let pattern = crate::router::wildcard::Pattern::parse(key).is_some();
            interest.ready(key, pattern).await;
        }
    }

    /// A durable subscription was just created: its messages start now
    /// (best effort: on failure it starts when its group first reads).
    pub(crate) async fn durable_created(self: &Arc<Self>, queue: &str) {
        if let Err(e) = queues::start_durable_from_now(self, queue).await {
            tracing::warn!(queue, error = %e, "cannot fix where a new durable subscription starts");
        }
    }

    /// Whether Kafka answered the last probe.
    pub(crate) fn is_reachable(&self) -> bool {
        self.health.is_reachable()
    }

    /// The bridge's gauges for `/metrics` and readiness.
    pub(crate) fn gauges(&self) -> crate::cluster::ClusterGauges {
        use std::sync::atomic::Ordering::Relaxed;
        crate::cluster::ClusterGauges {
            reachable: self.health.is_reachable(),
            ready: self.health.is_ready(),
            buffered: self.buffered(),
            queue_unsettled: self.health.queue_lag.load(Relaxed),
            records_in: self.health.records_in.load(Relaxed),
            queue_partitions: self.health.queue_partitions.load(Relaxed),
            topic_partitions: self.interest.get().map_or(0, |i| i.wanted_partitions()),
        }
    }

    /// The backend of the plugins' replicated logs.
    pub(crate) fn plugin_log_backend(self: &Arc<Self>) -> Arc<dyn crate::cluster::LogBackend> {
        Arc::new(log::KafkaLogs::new(Arc::clone(self)))
    }
}

/// The node id: configured, else the environment's `STOMPEDE_NODE_ID`
/// (applied by the binary), else the host name.
fn node_id(config: &ClusterConfig) -> String {
    if !config.node_id.is_empty() {
        return config.node_id.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("node-{}", std::process::id()))
}
