//! Whether Kafka is reachable, as the node last saw it. Readiness reports
//! it; while it is unreachable, topic messages are delivered on their own
//! node at once (and marked, so the node skips them when Kafka returns).

use super::KafkaBridge;
use crate::broker::Shared;
use rdkafka::producer::Producer;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the node asks Kafka for metadata to see that it answers.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a probe may wait for Kafka.
const PROBE_TIMEOUT: Duration = Duration::from_millis(2000);
/// Failed probes in a row that make Kafka count as unreachable: a busy
/// Kafka that answers slowly is not a missing one (librdkafka's "all
/// brokers down" counts at once).
const PROBE_FAILURES: u32 = 3;

/// Kafka's reachability and the bridge's gauges.
#[derive(Debug, Default)]
pub(crate) struct Health {
    reachable: AtomicBool,
    topics_missing: AtomicBool,
    /// Records of the queue partitions this node owns that it has not
    /// settled yet (consumer-group lag is this plus what Kafka holds
    /// beyond the node's position).
    pub queue_lag: AtomicU64,
    /// Records read from Kafka and delivered on this node.
    pub records_in: AtomicU64,
    /// Partitions of the queue stream this node owns now, summed over the
    /// queue groups it is a member of.
    pub queue_partitions: AtomicU64,
}

impl Health {
    /// Records what the last contact with Kafka said.
    pub(crate) fn set_reachable(&self, reachable: bool) {
        if self.reachable.swap(reachable, Ordering::Relaxed) != reachable {
            match reachable {
                true => tracing::info!("Kafka is reachable again"),
                false => {
                    tracing::warn!("Kafka is unreachable: delivering locally, buffering for Kafka")
                }
            }
        }
    }

    /// Whether Kafka answered the last probe.
    pub(crate) fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// The node started without its topics (degraded start).
    pub(crate) fn set_topics_missing(&self) {
        self.topics_missing.store(true, Ordering::Relaxed);
    }

    /// The topics exist now.
    pub(crate) fn set_topics_ready(&self) {
        self.topics_missing.store(false, Ordering::Relaxed);
    }

    /// Ready: Kafka answers and the cluster's topics exist.
    pub(crate) fn is_ready(&self) -> bool {
        self.is_reachable() && !self.topics_missing.load(Ordering::Relaxed)
    }
}

/// Asks Kafka for metadata every [`PROBE_INTERVAL`] until the broker stops.
pub(super) fn start_probe(bridge: &Arc<KafkaBridge>, shared: Weak<Shared>) {
    let bridge = Arc::clone(bridge);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failures = 0;
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            if shared.shutdown.is_cancelled() {
                return;
            }
            drop(shared);
            let probe = Arc::clone(&bridge);
            let answered = tokio::task::spawn_blocking(move || {
                let topic = probe.names.topics.clone();
                probe
                    .producer
                    .client()
                    .fetch_metadata(Some(&topic), PROBE_TIMEOUT)
                    .is_ok()
            })
            .await
            .unwrap_or(false);
            failures = if answered { 0 } else { failures + 1 };
            if answered || failures >= PROBE_FAILURES {
                bridge.health.set_reachable(answered);
            }
        }
    });
}
