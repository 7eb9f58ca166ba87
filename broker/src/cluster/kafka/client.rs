//! librdkafka settings shared by every Kafka client of the node, and the
//! client context that turns librdkafka's errors into the node's health.

use super::health::Health;
use crate::config::ClusterConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use std::sync::Arc;

/// Sees librdkafka's errors: "all brokers down" marks Kafka unreachable.
pub(crate) struct NodeContext {
    health: Arc<Health>,
}

impl NodeContext {
    pub(crate) fn new(health: Arc<Health>) -> NodeContext {
        NodeContext { health }
    }
}

impl ClientContext for NodeContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "stompede::kafka", facility, "{message}")
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "stompede::kafka", facility, "{message}")
            }
            _ => tracing::debug!(target: "stompede::kafka", facility, "{message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.health.set_reachable(false);
        }
        tracing::warn!(target: "stompede::kafka", %error, reason, "Kafka client error");
    }
}

impl ConsumerContext for NodeContext {}

/// The settings every client of the node shares: servers, client id, and
/// the operator's extra properties.
pub(crate) fn base(config: &ClusterConfig, node_id: &str, role: &str) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("client.id", format!("stompede-{node_id}-{role}"))
        // Reconnect quickly after Kafka comes back.
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "10000");
    for (key, value) in &config.kafka {
        client.set(key, value);
    }
    client
}

/// The producer every record of the node goes through. `acks=all`: a
/// RECEIPT means the record is on every in-sync replica.
pub(crate) fn producer(
    config: &ClusterConfig,
    node_id: &str,
    health: Arc<Health>,
) -> Result<FutureProducer<NodeContext>, String> {
    let mut client = base(config, node_id, "producer");
    client
        .set("acks", "all")
        .set("linger.ms", config.linger_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            config.buffer_max_messages.max(1).to_string(),
        )
        .set("message.timeout.ms", config.delivery_timeout_ms.to_string())
        // One request in flight per connection keeps retried batches in
        // order without relying on the idempotent producer, which not every
        // Kafka-compatible server implements.
        .set("max.in.flight.requests.per.connection", "1")
        .set("compression.type", "lz4");
    client
        .create_with_context(NodeContext::new(health))
        .map_err(|e| format!("cannot create the Kafka producer: {e}"))
}

/// A consumer's settings: no automatic commits, and fetches that come back
/// quickly when a partition is idle.
pub(crate) fn consumer(
    config: &ClusterConfig,
    node_id: &str,
    role: &str,
    group: &str,
) -> ClientConfig {
    let mut client = base(config, node_id, role);
    client
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", config.fetch_wait_max_ms.to_string())
        .set("fetch.error.backoff.ms", "50")
        .set("enable.partition.eof", "false");
    client
}
