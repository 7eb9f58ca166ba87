//! The replicated log a plugin keeps its state in when the broker runs as a
//! cluster. In a cluster every node reads the same log in the same order
//! (Kafka partitions), so a plugin that changes its state only by applying
//! records of its log ends with the same state on every node.

use bytes::Bytes;
use bytestring::ByteString;
use std::future::Future;
use std::pin::Pin;

/// Where a record sits in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// The partition.
    pub partition: u32,
    /// The record's offset in its partition (0 is the first record).
    pub offset: u64,
}

/// One record of a plugin's log, as every node reads it.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// Where it sits.
    pub position: LogPosition,
    /// The id of the node that appended it.
    pub origin: ByteString,
    /// What the plugin appended.
    pub payload: Bytes,
}

/// Resolves once the log stored an appended record durably (in Kafka:
/// acknowledged by the partition leader with `acks=all`).
pub type AppendFuture = Pin<Box<dyn Future<Output = Result<LogPosition, String>> + Send>>;

/// What the broker awaits after handing a record to the plugin, before it
/// hands over the next one of the same partition (backpressure).
pub type ApplyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A partitioned, ordered, durable log shared by every node of a cluster.
/// Records come back to [`crate::Plugin::on_log_record`] on every node —
/// the one that appended them too.
pub trait ReplicatedLog: Send + Sync + 'static {
    /// This node's id (the `origin` of the records it appends).
    fn node_id(&self) -> &str;

    /// How many partitions the log has.
    fn partitions(&self) -> u32;

    /// The partition for `key` (e.g. a room id): a stable hash that every
    /// node computes alike, whatever client library it links.
    fn partition_for(&self, key: &str) -> u32;

    /// Appends `payload` to `partition`. Fails when the log cannot take it
    /// (buffer full, log unreachable past the delivery timeout).
    fn append(&self, partition: u32, payload: Bytes) -> AppendFuture;
}
