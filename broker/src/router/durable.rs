//! Durable topic subscriptions.
//!
//! A durable subscription is a queue bound to a topic destination (or
//! pattern): every message published to a matching topic is also put in the
//! queue, whether or not its subscriber is connected. The subscriber
//! consumes the queue like any other. Bindings are kept in the store, so
//! they and their queued messages survive restarts; UNSUBSCRIBE with
//! `durable:true` removes both.

use super::queue::{PublishReply, QueueCommand, QueueHandle, QueueRegistry};
use super::wildcard::Pattern;
use crate::store::{Store, StoreError};
use bytestring::ByteString;
use std::sync::{Arc, RwLock};
use stompede_plugin::Message;

/// Where bindings live in the store's meta records.
const META_PREFIX: &str = "durable-sub/";
/// Internal queues of durable subscriptions live under this prefix, outside
/// the `/queue/` namespace clients can SEND to.
pub(crate) const QUEUE_PREFIX: &str = "/durable/";

#[derive(Debug)]
struct Binding {
    /// The topic destination or pattern subscribed to.
    topic: ByteString,
    pattern: Option<Pattern>,
    queue_name: ByteString,
    queue: QueueHandle,
}

impl Binding {
    fn matches(&self, destination: &str) -> bool {
        match &self.pattern {
            Some(p) => p.matches(destination),
            None => *self.topic == *destination,
        }
    }
}

/// Every durable subscription of the broker.
pub(crate) struct DurableBindings {
    // std RwLock: never held across an `.await`; publishers only read.
    bindings: RwLock<Vec<Binding>>,
    /// In a cluster the subscriptions' queues are fed from Kafka (a
    /// consumer group per subscription, so a subscriber finds its messages
    /// on whichever node it reconnects to), not by this node's publishes.
    fed_by_cluster: std::sync::atomic::AtomicBool,
    queues: Arc<QueueRegistry>,
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for DurableBindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableBindings").finish_non_exhaustive()
    }
}

/// The internal queue of subscription `name` owned by `owner`.
pub(crate) fn queue_name(owner: &str, name: &str) -> ByteString {
    ByteString::from(format!("{QUEUE_PREFIX}{owner}/{name}"))
}

impl DurableBindings {
    pub(crate) fn new(queues: Arc<QueueRegistry>, store: Arc<dyn Store>) -> DurableBindings {
        DurableBindings {
            bindings: RwLock::new(Vec::new()),
            fed_by_cluster: std::sync::atomic::AtomicBool::new(false),
            queues,
            store,
        }
    }

    /// Reloads the stored bindings (after the queues were recovered).
    pub(crate) fn recover(&self) -> Result<usize, StoreError> {
        let stored = self.store.list_meta(META_PREFIX)?;
        let mut bindings = write(&self.bindings);
        for (key, topic) in stored {
            let queue_name = ByteString::from(key[META_PREFIX.len()..].to_owned());
            let topic = ByteString::from(String::from_utf8_lossy(&topic).into_owned());
            bindings.push(Binding {
                pattern: Pattern::parse(&topic),
                queue: self.queues.queue(&queue_name),
                topic,
                queue_name,
            });
        }
        Ok(bindings.len())
    }

    /// Binds `queue_name` to `topic` (idempotent; a subscription that comes
    /// back with another topic is re-bound) and returns the queue, and
    /// whether the subscription is new.
    pub(crate) fn bind(
        &self,
        topic: &ByteString,
        queue_name: &ByteString,
    ) -> Result<(QueueHandle, bool), StoreError> {
        let mut bindings = write(&self.bindings);
        if let Some(b) = bindings.iter_mut().find(|b| b.queue_name == *queue_name) {
            if b.topic != *topic {
                self.store
                    .put_meta(&meta_key(queue_name), topic.as_bytes())?;
                b.topic = topic.clone();
                b.pattern = Pattern::parse(topic);
            }
            return Ok((b.queue.clone(), false));
        }
        self.store
            .put_meta(&meta_key(queue_name), topic.as_bytes())?;
        let queue = self.queues.queue(queue_name);
        bindings.push(Binding {
            topic: topic.clone(),
            pattern: Pattern::parse(topic),
            queue_name: queue_name.clone(),
            queue: queue.clone(),
        });
        Ok((queue, true))
    }

    /// Removes a durable subscription and every message queued for it.
    pub(crate) fn unbind(&self, queue_name: &str) -> Result<(), StoreError> {
        let mut bindings = write(&self.bindings);
        bindings.retain(|b| *b.queue_name != *queue_name);
        self.store.delete_meta(&meta_key(queue_name))?;
        if let Some(queue) = self.queues.remove(queue_name) {
            queue.send_now(QueueCommand::Delete);
        }
        Ok(())
    }

    /// From now on the cluster feeds the subscriptions' queues.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn set_fed_by_cluster(&self) {
        self.fed_by_cluster
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The topic destination or pattern of subscription queue
    /// `queue_name`, if it is bound here.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn topic_of(&self, queue_name: &str) -> Option<ByteString> {
        read(&self.bindings)
            .iter()
            .find(|b| *b.queue_name == *queue_name)
            .map(|b| b.topic.clone())
    }

    /// Every durable subscription as `(queue, topic)`.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        read(&self.bindings)
            .iter()
            .map(|b| (b.queue_name.to_string(), b.topic.to_string()))
            .collect()
    }

    /// The queues that must receive a message published to `destination`.
    pub(crate) fn matching(&self, destination: &str) -> Vec<QueueHandle> {
        let bindings = read(&self.bindings);
        if bindings.is_empty() {
            return Vec::new();
        }
        bindings
            .iter()
            .filter(|b| b.matches(destination))
            .map(|b| b.queue.clone())
            .collect()
    }

    /// Copies `message` into every matching durable subscription's queue
    /// (on a single node; in a cluster the queues are fed from Kafka).
    pub(crate) async fn publish(&self, message: &Arc<Message>) {
        if self
            .fed_by_cluster
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        for queue in self.matching(&message.destination) {
            let _ = queue
                .send(QueueCommand::Publish {
                    message: Arc::clone(message),
                    reply: PublishReply::Nobody,
                })
                .await;
        }
    }
}

fn meta_key(queue_name: &str) -> String {
    format!("{META_PREFIX}{queue_name}")
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
