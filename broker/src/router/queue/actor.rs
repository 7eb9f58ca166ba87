//! The queue actor: ready messages, consumers, credit, unacked deliveries,
//! expiry, dead-lettering and the store writes of one queue.
//!
//! Delivery is round-robin among consumers with credit. A delivery stays
//! unacknowledged until the session ACKs it (client modes) or has written
//! it (auto mode). NACKed deliveries and those of a consumer that goes away
//! return to the front of the queue flagged `redelivered`, unless they have
//! used up `max_deliveries` (or the NACK said `requeue:false`): then they
//! move to the dead-letter queue.

use super::ready::{priority_of, QueuedMessage, Ready};
use super::{ConsumerSpec, PublishError, PublishReply, QueueCommand, QueueGauges, QueueRegistry};
use crate::config::{QueueOverflowPolicy, QueueSettings};
use crate::session::outbox::{Delivery, Outbound, PushOutcome, QueueDeliveryTag};
use crate::stats::{DestinationKind, MessageEvent, Stats};
use crate::store::commit::Committer;
use crate::store::{encode_message, Store};
use bytestring::ByteString;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};
use stompede_plugin::Message;
use tokio::sync::mpsc;

/// Commands handled per turn before dispatching.
const COMMAND_BATCH: usize = 256;

/// What every actor shares.
pub(super) struct Shared {
    pub stats: Arc<Stats>,
    pub store: Arc<dyn Store>,
    pub committer: Committer,
    pub registry: Weak<QueueRegistry>,
}

#[derive(Debug)]
struct Consumer {
    spec: ConsumerSpec,
    unacked: BTreeMap<u64, QueuedMessage>,
}

impl Consumer {
    fn has_credit(&self) -> bool {
        self.unacked.len() < self.spec.prefetch as usize
    }
}

pub(super) struct QueueActor {
    name: ByteString,
    settings: QueueSettings,
    shared: Shared,
    gauges: Arc<QueueGauges>,
    ready: Ready,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    next_tag: u64,
    next_seq: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl QueueActor {
    /// A new actor; `recovered` messages (from the store, after a restart)
    /// are queued first, flagged `redelivered` since they may have been
    /// delivered before the crash.
    pub(super) fn new(
        name: ByteString,
        settings: QueueSettings,
        shared: Shared,
        gauges: Arc<QueueGauges>,
        recovered: Vec<(u64, Message)>,
    ) -> QueueActor {
        let mut actor = QueueActor {
            name,
            settings,
            shared,
            gauges,
            ready: Ready::default(),
            consumers: Vec::new(),
            next_consumer: 0,
            next_tag: 0,
            next_seq: 1,
        };
        let now = now_ms();
        for (seq, message) in recovered {
            actor.next_seq = actor.next_seq.max(seq + 1);
            let mut queued = actor.queued(Arc::new(message), now);
            queued.seq = Some(seq);
            queued.redelivered = true;
            actor.ready.push_back(queued);
        }
        actor.publish_gauges();
        actor
    }

    /// Makes the current depth visible to metric scrapes.
    fn publish_gauges(&self) {
        self.gauges.set(
            self.ready.len(),
            self.ready.bytes(),
            self.consumers.iter().map(|c| c.unacked.len()).sum(),
            self.consumers.len(),
        );
    }

    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<QueueCommand>) {
        let mut batch = Vec::with_capacity(COMMAND_BATCH);
        loop {
            if commands.recv_many(&mut batch, COMMAND_BATCH).await == 0 {
                break;
            }
            for command in batch.drain(..) {
                if !self.handle(command) {
                    tracing::debug!(queue = %self.name, "queue deleted");
                    self.gauges.set(0, 0, 0, 0);
                    return;
                }
            }
            self.dispatch();
            self.publish_gauges();
        }
    }

    /// Handles one command; false when the queue was deleted.
    fn handle(&mut self, command: QueueCommand) -> bool {
        match command {
            QueueCommand::Publish { message, reply } => self.publish(message, reply),
            QueueCommand::Subscribe(spec) => {
                self.consumers.push(Consumer {
                    spec,
                    unacked: BTreeMap::new(),
                });
                if self.consumers.len() == 1 {
                    self.tell_consumers_present(true);
                }
            }
            QueueCommand::Unsubscribe { consumer } => {
                if let Some(i) = self.consumers.iter().position(|c| c.spec.id == consumer) {
                    self.remove_consumer(i);
                }
            }
            QueueCommand::Ack { consumer, tags } => {
                let mut done = Vec::with_capacity(tags.len());
                if let Some(c) = self.consumer_mut(consumer) {
                    done.extend(tags.iter().filter_map(|t| c.unacked.remove(t)));
                }
                self.shared
                    .stats
                    .acked(DestinationKind::Queue, done.len() as u64);
                for m in done {
                    self.forget(&m);
                }
            }
            QueueCommand::Nack {
                consumer,
                tags,
                requeue,
            } => {
                let mut refused = Vec::with_capacity(tags.len());
                if let Some(c) = self.consumer_mut(consumer) {
                    refused.extend(tags.iter().filter_map(|t| c.unacked.remove(t)));
                }
                self.shared
                    .stats
                    .nacked(DestinationKind::Queue, refused.len() as u64);
                if requeue {
                    self.requeue_front(refused);
                } else {
                    for m in refused {
                        self.dead_letter(m, "rejected");
                    }
                }
            }
            QueueCommand::Info(reply) => {
                let _ = reply.send(super::QueueInfo {
                    name: self.name.to_string(),
                    ready: self.ready.len(),
                    ready_bytes: self.ready.bytes(),
                    unacked: self.consumers.iter().map(|c| c.unacked.len()).sum(),
                    consumers: self.consumers.len(),
                });
            }
            QueueCommand::Purge(reply) => {
                let purged = self.ready.drain_all();
                for m in &purged {
                    self.forget(m);
                }
                self.publish_gauges();
                let _ = reply.send(purged.len());
            }
            QueueCommand::FromCluster {
                message,
                origin,
                redelivered,
            } => {
                let mut queued = self.queued(message, now_ms());
                queued.origin = Some(origin);
                queued.redelivered = redelivered;
                // No length limit: the cluster consumer bounds what it
                // hands over, and refusing would leave Kafka nobody to tell.
                self.ready.push_back(queued);
            }
            QueueCommand::Revoke { source, partitions } => {
                self.ready.take_where(|m| {
                    m.origin.as_ref().is_some_and(|o| {
                        o.source() == source
                            && partitions
                                .as_ref()
                                .is_none_or(|p| p.contains(&o.partition()))
                    })
                });
                self.publish_gauges();
            }
            QueueCommand::Delete => {
                for m in self.ready.drain_all() {
                    self.forget(&m);
                }
                for c in std::mem::take(&mut self.consumers) {
                    for m in c.unacked.into_values() {
                        self.forget(&m);
                    }
                }
                return false;
            }
        }
        true
    }

    fn consumer_mut(&mut self, id: u64) -> Option<&mut Consumer> {
        self.consumers.iter_mut().find(|c| c.spec.id == id)
    }

    fn queued(&self, message: Arc<Message>, now: u64) -> QueuedMessage {
        let header_expiry = message
            .headers
            .get("expires")
            .and_then(|e| e.trim().parse::<u64>().ok())
            .filter(|e| *e > 0);
        let ttl_expiry = (self.settings.ttl_ms > 0).then(|| now + self.settings.ttl_ms);
        let expires_at = match (header_expiry, ttl_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        QueuedMessage {
            priority: priority_of(&message),
            message,
            seq: None,
            deliveries: 0,
            redelivered: false,
            expires_at,
            origin: None,
        }
    }

    fn publish(&mut self, message: Arc<Message>, reply: PublishReply) {
        if !matches!(reply, PublishReply::Nobody) {
            // From a publisher (not a dead letter or a durable
            // subscription's copy of a topic message, counted as a topic
            // publish).
            self.shared.stats.published(DestinationKind::Queue);
        }
        let result = self.enqueue(message);
        match (reply, result) {
            (PublishReply::Receipt { outbox, receipt_id }, Ok(Some(_))) => {
                // Persistent: the RECEIPT waits until the write is durable.
                self.shared
                    .committer
                    .after_sync(Box::new(move |synced| match synced {
                        Ok(()) => outbox.receipt(receipt_id),
                        Err(e) => {
                            outbox.refuse(PublishError::Store(e).to_string(), Some(receipt_id))
                        }
                    }));
            }
            (PublishReply::Receipt { outbox, receipt_id }, Ok(None)) => outbox.receipt(receipt_id),
            (PublishReply::Receipt { outbox, receipt_id }, Err(e)) => {
                outbox.refuse(e.to_string(), Some(receipt_id))
            }
            (PublishReply::OnError(publisher), Err(e)) => publisher.refuse(e.to_string(), None),
            (PublishReply::Nobody, Err(e)) => {
                tracing::warn!(queue = %self.name, error = %e, "message refused");
            }
            (_, Ok(_)) => {}
        }
    }

    /// Accepts a message; returns its store sequence if it was persisted.
    fn enqueue(&mut self, message: Arc<Message>) -> Result<Option<u64>, PublishError> {
        let len = message.body.len() as u64;
        while self.ready.len() >= self.settings.max_length
            || (self.settings.max_bytes > 0 && self.ready.bytes() + len > self.settings.max_bytes)
        {
            self.shared.stats.queue_overflows.inc();
            match self.settings.overflow {
                QueueOverflowPolicy::Reject => {
                    return Err(PublishError::Full(self.name.to_string()))
                }
                QueueOverflowPolicy::DropOldest => match self.ready.pop_oldest_lowest() {
                    Some(dropped) => {
                        self.shared.stats.messages(
                            DestinationKind::Queue,
                            MessageEvent::Dropped,
                            1,
                        );
                        self.forget(&dropped)
                    }
                    // A single message larger than max_bytes.
                    None => return Err(PublishError::Full(self.name.to_string())),
                },
            }
        }
        let mut queued = self.queued(message, now_ms());
        if self.settings.durable || queued.message.headers.get("persistent") == Some("true") {
            let seq = self.next_seq;
            self.shared
                .store
                .save(&self.name, seq, &encode_message(&queued.message))
                .map_err(PublishError::Store)?;
            self.next_seq += 1;
            queued.seq = Some(seq);
        }
        let seq = queued.seq;
        self.ready.push_back(queued);
        Ok(seq)
    }

    /// Removes a message for good: deletes it from the store, or lets the
    /// cluster commit past it.
    fn forget(&self, m: &QueuedMessage) {
        if let Some(origin) = &m.origin {
            origin.settled();
        }
        if let Some(seq) = m.seq {
            if let Err(e) = self.shared.store.delete(&self.name, seq) {
                // It stays stored and comes back after a restart, flagged
                // redelivered: a duplicate, never a loss.
                tracing::error!(queue = %self.name, seq, error = %e, "could not delete an acknowledged message");
            }
        }
    }

    fn remove_consumer(&mut self, i: usize) {
        let gone = self.consumers.remove(i);
        self.requeue_front(gone.unacked.into_values().collect());
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        if self.consumers.is_empty() {
            self.tell_consumers_present(false);
        }
    }

    fn tell_consumers_present(&self, present: bool) {
        if let Some(registry) = self.shared.registry.upgrade() {
            registry.consumers_present(&self.name, present);
        }
    }

    /// Puts refused or orphaned deliveries back at the head of the queue,
    /// oldest first, or dead-letters those out of deliveries.
    fn requeue_front(&mut self, messages: Vec<QueuedMessage>) {
        for mut m in messages.into_iter().rev() {
            let max = self.settings.max_deliveries;
            if max > 0 && m.deliveries >= max {
                self.dead_letter(m, "max-deliveries");
                continue;
            }
            m.redelivered = true;
            self.shared.stats.messages_redelivered.inc();
            self.ready.push_front(m);
        }
    }

    /// Moves a message to this queue's dead-letter queue, with headers
    /// saying why and from where.
    fn dead_letter(&mut self, m: QueuedMessage, reason: &str) {
        self.forget(&m);
        let queue_name = self.name.strip_prefix("/queue/").unwrap_or(&self.name);
        let target = self.settings.dead_letter.replace("{name}", queue_name);
        let registry = self.shared.registry.upgrade();
        let (Some(registry), false) = (registry, target == *self.name || target.is_empty()) else {
            tracing::warn!(queue = %self.name, reason, "message dropped: no dead-letter queue");
            self.shared
                .stats
                .messages(DestinationKind::Queue, MessageEvent::Dropped, 1);
            return;
        };
        self.shared.stats.messages_dead_lettered.inc();
        let mut headers = m.message.headers.clone();
        headers.set("x-dead-letter-reason", reason.to_owned());
        headers.set("x-original-destination", self.name.clone());
        headers.set("x-original-message-id", m.message.message_id.clone());
        headers.set("x-delivery-count", m.deliveries.to_string());
        if m.seq.is_some() || m.origin.is_some() {
            headers.set("persistent", "true");
        }
        let target = ByteString::from(target);
        let letter = Message::new(target.clone(), headers, m.message.body.clone());
        registry.queue(&target).send_now(QueueCommand::Publish {
            message: Arc::new(letter),
            reply: PublishReply::Nobody,
        });
    }

    /// Hands ready messages to consumers with credit, round-robin.
    fn dispatch(&mut self) {
        let now = now_ms();
        while !self.ready.is_empty() && !self.consumers.is_empty() {
            let n = self.consumers.len();
            let Some(offset) =
                (0..n).find(|k| self.consumers[(self.next_consumer + k) % n].has_credit())
            else {
                return;
            };
            let Some(mut queued) = self.ready.pop_next() else {
                return;
            };
            if queued.expires_at.is_some_and(|t| now >= t) {
                self.shared.stats.messages_expired.inc();
                self.forget(&queued);
                continue;
            }
            let i = (self.next_consumer + offset) % n;
            self.next_consumer = (i + 1) % n;
            let tag = self.next_tag;
            self.next_tag += 1;
            queued.deliveries += 1;
            let consumer = &mut self.consumers[i];
            let delivery = Delivery {
                subscription: consumer.spec.subscription.clone(),
                message: Arc::clone(&queued.message),
                queue: Some(QueueDeliveryTag {
                    consumer: consumer.spec.id,
                    tag,
                }),
                redelivered: queued.redelivered,
            };
            if consumer.spec.outbox.push(Outbound::Delivery(delivery)) == PushOutcome::Closed {
                // The session is gone; its Unsubscribe is on the way. Take
                // it out now so nothing more is sent its way.
                queued.deliveries -= 1;
                self.ready.push_front(queued);
                self.remove_consumer(i);
                continue;
            }
            consumer.unacked.insert(tag, queued);
        }
    }
}
