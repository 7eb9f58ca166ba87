//! What this node sends to Kafka: topic and queue messages from its
//! clients, and plugin log records.

use super::{KafkaBridge, DELIVERED_HEADER};
use crate::cluster::partition::partition_for;
use crate::store::encode_message;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use stompede_plugin::{LogPosition, Message};

/// Resolves once Kafka stored the record (`acks=all`), with its position.
pub(crate) type Published = Pin<Box<dyn Future<Output = Result<LogPosition, String>> + Send>>;

/// Why a record could not even be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// The node's buffer for Kafka is full (Kafka slow or unreachable).
    #[error("the cluster's buffer for Kafka is full: try again later")]
    BufferFull,
    /// Anything else librdkafka refused.
    #[error("cannot send to the cluster: {0}")]
    Kafka(String),
}

/// Spreads one node's queue messages over the partitions.
static NEXT_QUEUE_SLOT: AtomicU32 = AtomicU32::new(0);

impl KafkaBridge {
    /// Sends a message for the topic table (a `/topic/`, `/user/` or
    /// `/reply-queue/` key) to every node. `delivered_here`: this node has
    /// delivered it to its own subscribers already and skips it when it
    /// comes back.
    pub(crate) fn publish_topic(
        &self,
        key: &str,
        message: &Message,
        delivered_here: bool,
    ) -> Result<Published, PublishError> {
        let partition = partition_for(key, self.partitions);
        let topic = self.names.topics.clone();
        // The mark is the only header: Kafka-compatible servers store
        // headers per record, and most records need none.
        let mark = delivered_here.then_some(DELIVERED_HEADER);
        self.send(&topic, partition, Some(key), &encode_message(message), mark)
    }

    /// Sends a message to queue `name` of the cluster: one partition after
    /// the other, starting from the queue's own, so consumers on every
    /// node share the queue.
    pub(crate) fn publish_queue(
        &self,
        name: &str,
        message: &Message,
    ) -> Result<Published, PublishError> {
        let slot = NEXT_QUEUE_SLOT.fetch_add(1, Ordering::Relaxed);
        let partition = (partition_for(name, self.partitions) + slot) % self.partitions;
        let topic = self.names.queues.clone();
        self.send(
            &topic,
            partition,
            Some(name),
            &encode_message(message),
            None,
        )
    }

    /// Sends one record to `partition` of `topic`, with the header
    /// `node_header` naming this node if given.
    pub(crate) fn send(
        &self,
        topic: &str,
        partition: u32,
        key: Option<&str>,
        payload: &[u8],
        node_header: Option<&str>,
    ) -> Result<Published, PublishError> {
        let mut record = FutureRecord::<str, [u8]>::to(topic)
            .partition(partition as i32)
            .payload(payload);
        if let Some(name) = node_header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: name,
                value: Some(self.node_id.as_bytes()),
            }));
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| match e {
                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    PublishError::BufferFull
                }
                e => PublishError::Kafka(e.to_string()),
            })?;
        Ok(Box::pin(async move {
            match delivery.await {
                Ok(Ok(done)) => Ok(LogPosition {
                    partition: done.partition as u32,
                    offset: done.offset as u64,
                }),
                Ok(Err((e, _))) => Err(format!("Kafka did not take the message: {e}")),
                Err(_) => Err("the Kafka producer stopped".to_owned()),
            }
        }))
    }

    /// Records waiting for Kafka's acknowledgement.
    pub(crate) fn buffered(&self) -> u64 {
        use rdkafka::producer::Producer;
        self.producer.in_flight_count().max(0) as u64
    }
}
