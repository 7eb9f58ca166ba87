//! Clustering: several nodes act as one broker through a shared,
//! partitioned log (Kafka). This module holds what does not depend on
//! Kafka — the partitioner, plugin logs and their in-memory backend — and,
//! behind the `kafka` feature, the Kafka bridge itself.

#[cfg(not(feature = "kafka"))]
mod disabled;
#[cfg(feature = "kafka")]
pub(crate) mod kafka;
mod memory;
pub mod partition;
pub(crate) mod plugin_logs;

pub use memory::MemoryLogBus;

#[cfg(not(feature = "kafka"))]
pub(crate) use disabled::{Bridge, Published};
#[cfg(feature = "kafka")]
pub(crate) use kafka::{KafkaBridge as Bridge, Published};

/// What the bridge reports in `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ClusterGauges {
    /// Whether Kafka answered the last probe.
    pub reachable: bool,
    /// Whether the node is ready (Kafka reachable, topics present).
    pub ready: bool,
    /// Records waiting for Kafka's acknowledgement.
    pub buffered: u64,
    /// Queue records this node took from Kafka and has not settled.
    pub queue_unsettled: u64,
    /// Records read from Kafka and delivered on this node.
    pub records_in: u64,
    /// Partitions of the queue stream this node owns now.
    pub queue_partitions: u64,
    /// Partitions of the topic stream this node reads (its subscribers
    /// need them).
    pub topic_partitions: u64,
}

use std::sync::Arc;
use stompede_plugin::{LogRecord, ReplicatedLog};
use tokio::sync::mpsc;

/// Where a node's plugin logs live: Kafka in a cluster, memory for tests
/// and embedders ([`MemoryLogBus`]).
pub trait LogBackend: Send + Sync + 'static {
    /// This node's id.
    fn node_id(&self) -> &str;

    /// The writing side of log `name` (created if needed).
    fn open(&self, name: &str) -> Result<Arc<dyn ReplicatedLog>, String>;

    /// Reads log `name` from `starts` (per partition: the first offset to
    /// read, `None` = the oldest record kept), records of one partition in
    /// order, for as long as the receiver is kept.
    fn read(
        &self,
        name: &str,
        starts: Vec<(u32, Option<u64>)>,
    ) -> Result<mpsc::Receiver<LogRecord>, String>;
}
