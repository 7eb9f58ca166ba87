//! The topic stream: every node reads the partitions of `{prefix}.topics`
//! its subscribers need and delivers each record to them, so all nodes
//! deliver a destination's messages in its partition's order.
//!
//! A partition no subscriber of this node needs is not assigned (not
//! fetched): a node reads only the traffic it delivers. When a partition
//! becomes needed, the reader adds it to its assignment at the partition's
//! end as of now; the SUBSCRIBE that needed it waits for that, so its
//! RECEIPT promises every message sent after it.

use super::client::{self, NodeContext};
use super::{KafkaBridge, DELIVERED_HEADER};
use crate::broker::Shared;
use crate::cluster::partition::partition_for;
use crate::router::topic::TopicInterest;
use crate::store::decode_message;
use bytestring::ByteString;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a partition's end may take to read.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a SUBSCRIBE waits for its partition to be read.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which partitions this node's subscribers need, and whether the reader
/// reads them yet.
pub(crate) struct Interest {
    partitions: u32,
    wanted: Mutex<Vec<u32>>,
    /// Per partition: whether the reader reads it from a point after the
    /// interest arose.
    ready: Vec<watch::Sender<bool>>,
    changes: mpsc::UnboundedSender<(u32, bool)>,
}

impl TopicInterest for Interest {
    fn changed(&self, key: &str, pattern: bool, added: bool) {
        let mut wanted = crate::session::outbox::lock(&self.wanted);
        for partition in self.partitions_of(key, pattern) {
            let Some(count) = wanted.get_mut(partition as usize) else {
                continue;
            };
            match added {
                true => {
                    *count += 1;
                    if *count == 1 {
                        self.ready[partition as usize].send_replace(false);
                        let _ = self.changes.send((partition, true));
                    }
                }
                false if *count > 0 => {
                    *count -= 1;
                    if *count == 0 {
                        let _ = self.changes.send((partition, false));
                    }
                }
                false => {}
            }
        }
    }
}

impl Interest {
    /// A pattern may match a destination on any partition.
    fn partitions_of(&self, key: &str, pattern: bool) -> Vec<u32> {
        match pattern {
            true => (0..self.partitions).collect(),
            false => vec![partition_for(key, self.partitions)],
        }
    }

    /// How many partitions this node's subscribers need.
    pub(crate) fn wanted_partitions(&self) -> u64 {
        crate::session::outbox::lock(&self.wanted)
            .iter()
            .filter(|n| **n > 0)
            .count() as u64
    }

    fn still_wanted(&self, partition: u32) -> bool {
        crate::session::outbox::lock(&self.wanted)
            .get(partition as usize)
            .is_some_and(|n| *n > 0)
    }

    /// Waits (bounded) until the partitions `key` needs are read.
    pub(crate) async fn ready(&self, key: &str, pattern: bool) {
        for partition in self.partitions_of(key, pattern) {
            let mut ready = self.ready[partition as usize].subscribe();
            let _ = tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|r| *r)).await;
        }
    }
}

/// Starts the reader of the topic stream: it reads the partitions this
/// node's subscribers need.
pub(super) fn start(
    bridge: &Arc<KafkaBridge>,
    shared: Weak<Shared>,
) -> Result<Arc<Interest>, String> {
    let group = format!("{}.node.{}", bridge.names.topics, bridge.node_id);
    let consumer: StreamConsumer<NodeContext> =
        client::consumer(&bridge.config, &bridge.node_id, "topics", &group)
            .create_with_context(NodeContext::new(Arc::clone(&bridge.health)))
            .map_err(|e| format!("cannot create the topic consumer: {e}"))?;
    consumer
        .assign(&TopicPartitionList::new())
        .map_err(|e| format!("cannot read the topic stream: {e}"))?;
    let (changes, mut wanted) = mpsc::unbounded_channel();
    let interest = Arc::new(Interest {
        partitions: bridge.partitions,
        wanted: Mutex::new(vec![0; bridge.partitions as usize]),
        ready: (0..bridge.partitions)
            .map(|_| watch::channel(false).0)
            .collect(),
        changes,
    });
    let consumer = Arc::new(consumer);
    let bridge = Arc::clone(bridge);
    let reader_interest = Arc::clone(&interest);
    tokio::spawn(async move {
        let Some(stop) = shared.upgrade().map(|s| s.shutdown.clone()) else {
            return;
        };
        let mut reading = vec![false; bridge.partitions as usize];
        loop {
            let record = tokio::select! {
                () = stop.cancelled() => return,
                change = wanted.recv() => {
                    let Some((partition, _)) = change else { return };
                    follow(&bridge, &consumer, &reader_interest, &mut reading, partition).await;
                    continue;
                }
                record = consumer.recv() => record,
            };
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    tracing::debug!(error = %e, "topic stream");
                    // librdkafka retries by itself; do not spin on a burst of errors.
                    tokio::time::sleep(super::ERROR_PAUSE).await;
                    continue;
                }
            };
            bridge.health.set_reachable(true);
            if delivered_here(&record, &bridge.node_id) {
                continue;
            }
            let (Some(Ok(key)), Some(payload)) = (record.key_view::<str>(), record.payload())
            else {
                tracing::warn!(
                    partition = record.partition(),
                    offset = record.offset(),
                    "topic record without a key or payload: skipped"
                );
                continue;
            };
            let message = match decode_message(payload) {
                Ok(message) => Arc::new(message),
                Err(e) => {
                    tracing::warn!(partition = record.partition(), offset = record.offset(), error = %e, "unreadable topic record: skipped");
                    continue;
                }
            };
            let key = ByteString::from(key);
            let Some(shared) = shared.upgrade() else {
                return;
            };
            bridge.health.records_in.fetch_add(1, Ordering::Relaxed);
            shared.router.fan_out(&key, &message).await;
        }
    });
    Ok(interest)
}

/// Brings the reading of `partition` in line with the interest in it:
/// adds it to the assignment at the partition's end as of now, or takes it
/// out. Idempotent, so changes that cancel each other out leave a partition
/// being read as it was (no skipped records for its subscribers).
async fn follow(
    bridge: &KafkaBridge,
    consumer: &Arc<StreamConsumer<NodeContext>>,
    interest: &Interest,
    reading: &mut [bool],
    partition: u32,
) {
    let want = interest.still_wanted(partition);
    let Some(is_read) = reading.get_mut(partition as usize) else {
        return;
    };
    let topic = bridge.names.topics.clone();
    match (want, *is_read) {
        (true, false) => {
            let reader = Arc::clone(consumer);
            let reachable = bridge.health.is_reachable();
            let added = tokio::task::spawn_blocking(move || {
                let end = match reachable {
                    true => reader
                        .fetch_watermarks(&topic, partition as i32, WATERMARK_TIMEOUT)
                        .map_or(Offset::End, |(_, high)| Offset::Offset(high)),
                    false => Offset::End,
                };
                let mut at = TopicPartitionList::new();
                at.add_partition_offset(&topic, partition as i32, end)
                    .map_err(|e| e.to_string())?;
                reader.incremental_assign(&at).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string());
            match added {
                Ok(Ok(())) => *is_read = true,
                Ok(Err(e)) | Err(e) => {
                    tracing::warn!(partition, error = %e, "cannot start reading a topic partition")
                }
            }
        }
        (false, true) => {
            let mut list = TopicPartitionList::new();
            list.add_partition(&topic, partition as i32);
            match consumer.incremental_unassign(&list) {
                Ok(()) => *is_read = false,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "cannot stop reading a topic partition")
                }
            }
        }
        _ => {}
    }
    if want {
        interest.ready[partition as usize].send_replace(true);
    }
}

/// Whether this node delivered the record itself before sending it (Kafka
/// was unreachable then).
fn delivered_here(record: &impl rdkafka::message::Message, node_id: &str) -> bool {
    record.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == DELIVERED_HEADER && h.value == Some(node_id.as_bytes()))
    })
}
