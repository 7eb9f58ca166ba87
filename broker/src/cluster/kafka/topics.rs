//! The topic stream: every node reads every partition of `{prefix}.topics`
//! and delivers each record to its own subscribers, so all nodes deliver a
//! destination's messages in its partition's order.

use super::client::{self, NodeContext};
use super::{KafkaBridge, DELIVERED_HEADER};
use crate::broker::Shared;
use crate::store::decode_message;
use bytestring::ByteString;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// How long the start may wait for the partitions' ends.
const WATERMARK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Assigns every partition of the topic stream from its end (a node's
/// subscribers get what is sent from now on) and delivers what arrives.
/// The end is read now, not left for the first fetch to resolve, so
/// nothing sent after the node started is missed.
pub(super) fn start(bridge: &Arc<KafkaBridge>, shared: Weak<Shared>) -> Result<(), String> {
    let group = format!("{}.node.{}", bridge.names.topics, bridge.node_id);
    let consumer: StreamConsumer<NodeContext> =
        client::consumer(&bridge.config, &bridge.node_id, "topics", &group)
            .create_with_context(NodeContext::new(Arc::clone(&bridge.health)))
            .map_err(|e| format!("cannot create the topic consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let reachable = bridge.health.is_reachable();
    for partition in 0..bridge.partitions {
        let end = match reachable {
            false => Offset::End,
            true => consumer
                .fetch_watermarks(&bridge.names.topics, partition as i32, WATERMARK_TIMEOUT)
                .map_or(Offset::End, |(_, high)| Offset::Offset(high)),
        };
        assignment
            .add_partition_offset(&bridge.names.topics, partition as i32, end)
            .map_err(|e| e.to_string())?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| format!("cannot read the topic stream: {e}"))?;
    let bridge = Arc::clone(bridge);
    tokio::spawn(async move {
        let Some(stop) = shared.upgrade().map(|s| s.shutdown.clone()) else {
            return;
        };
        loop {
            let record = tokio::select! {
                () = stop.cancelled() => return,
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
    Ok(())
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
