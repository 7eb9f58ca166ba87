//! Plugin logs on Kafka: log `name` is the topic `{prefix}.plugin.{name}`,
//! written through the node's producer and read by every node from where
//! its plugin resumes.

use super::client::{self, NodeContext};
use super::{KafkaBridge, ORIGIN_HEADER};
use crate::cluster::partition::partition_for;
use crate::cluster::LogBackend;
use bytes::Bytes;
use bytestring::ByteString;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use stompede_plugin::{AppendFuture, LogPosition, LogRecord, ReplicatedLog};
use tokio::sync::mpsc;

/// Records read ahead of the plugin.
const READ_BUFFER: usize = 256;

/// The node's plugin logs on Kafka.
pub(super) struct KafkaLogs {
    bridge: Arc<KafkaBridge>,
}

impl KafkaLogs {
    pub(super) fn new(bridge: Arc<KafkaBridge>) -> KafkaLogs {
        KafkaLogs { bridge }
    }
}

impl LogBackend for KafkaLogs {
    fn node_id(&self) -> &str {
        &self.bridge.node_id
    }

    fn open(&self, name: &str) -> Result<Arc<dyn ReplicatedLog>, String> {
        Ok(Arc::new(KafkaLog {
            bridge: Arc::clone(&self.bridge),
            topic: self.bridge.names.plugin_log(name),
        }))
    }

    fn read(
        &self,
        name: &str,
        starts: Vec<(u32, Option<u64>)>,
    ) -> Result<mpsc::Receiver<LogRecord>, String> {
        let bridge = &self.bridge;
        let topic = bridge.names.plugin_log(name);
        let group = format!("{topic}.node.{}", bridge.node_id);
        let consumer: StreamConsumer<NodeContext> =
            client::consumer(&bridge.config, &bridge.node_id, "log", &group)
                .create_with_context(NodeContext::new(Arc::clone(&bridge.health)))
                .map_err(|e| format!("cannot create a reader of {topic}: {e}"))?;
        let mut assignment = TopicPartitionList::new();
        for (partition, from) in starts {
            let offset = from.map_or(Offset::Beginning, |n| Offset::Offset(n as i64));
            assignment
                .add_partition_offset(&topic, partition as i32, offset)
                .map_err(|e| e.to_string())?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot read {topic}: {e}"))?;
        let (tx, rx) = mpsc::channel(READ_BUFFER);
        tokio::spawn(async move {
            loop {
                let record = tokio::select! {
                    () = tx.closed() => return,
                    record = consumer.recv() => record,
                };
                let record = match record {
                    Ok(record) => record,
                    Err(e) => {
                        tracing::debug!(error = %e, topic, "plugin log");
                        // librdkafka retries by itself; do not spin on a burst of errors.
                        tokio::time::sleep(super::ERROR_PAUSE).await;
                        continue;
                    }
                };
                let origin = record
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == ORIGIN_HEADER)
                            .and_then(|h| h.value)
                    })
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(ByteString::from)
                    .unwrap_or_default();
                let record = LogRecord {
                    position: LogPosition {
                        partition: record.partition() as u32,
                        offset: record.offset() as u64,
                    },
                    origin,
                    payload: Bytes::copy_from_slice(record.payload().unwrap_or_default()),
                };
                if tx.send(record).await.is_err() {
                    return;
                }
            }
        });
        Ok(rx)
    }
}

/// One plugin log, as the plugin writes it.
struct KafkaLog {
    bridge: Arc<KafkaBridge>,
    topic: String,
}

impl ReplicatedLog for KafkaLog {
    fn node_id(&self) -> &str {
        &self.bridge.node_id
    }

    fn partitions(&self) -> u32 {
        self.bridge.partitions
    }

    fn partition_for(&self, key: &str) -> u32 {
        partition_for(key, self.bridge.partitions)
    }

    fn append(&self, partition: u32, payload: Bytes) -> AppendFuture {
        match self
            .bridge
            .send(&self.topic, partition, None, &payload, Some(ORIGIN_HEADER))
        {
            Ok(published) => published,
            Err(e) => Box::pin(std::future::ready(Err(e.to_string()))),
        }
    }
}
