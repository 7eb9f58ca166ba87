//! The bounded outbox between the router and one session.
//!
//! Publishers push deliveries; the session drains every ready delivery at
//! once and writes them with one flush. Topic deliveries are bounded by the
//! outbox capacity and the slow-consumer policy; queue deliveries are already
//! bounded by prefetch credit, so they are never dropped here.

use crate::config::SlowConsumerPolicy;
use crate::stats::Stats;
use bytestring::ByteString;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use stompede_plugin::Message;
use tokio::sync::Notify;

/// One item for the session to write.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A message for one of the session's subscriptions.
    Delivery(Delivery),
    /// A plugin's message that the slow-consumer policy must not drop
    /// (history replay; the plugin bounds how many it queues).
    Reliable(Delivery),
    /// A plugin's RECEIPT, with extra headers (e.g. a chat post's `x-seq`).
    ReceiptWith {
        /// The `receipt-id`.
        receipt_id: ByteString,
        /// Headers written after `receipt-id`.
        headers: stompede_codec::Headers,
    },
    /// A RECEIPT owed for work finished elsewhere (a queue publish that
    /// had to be accepted, or stored, first).
    Receipt(ByteString),
    /// An ERROR to send before closing (slow consumer, refused publish).
    Fatal {
        /// The `message` header.
        message: String,
        /// The `receipt-id`, if the failed frame asked for a receipt.
        receipt_id: Option<ByteString>,
    },
}

/// A message addressed to one subscription of a session.
#[derive(Debug)]
pub(crate) struct Delivery {
    /// The SUBSCRIBE id.
    pub subscription: ByteString,
    /// The message.
    pub message: Arc<Message>,
    /// Set for queue deliveries: who to acknowledge.
    pub queue: Option<QueueDeliveryTag>,
    /// Whether this message was delivered before.
    pub redelivered: bool,
}

/// Identifies a queue delivery so the session can ACK or NACK it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueDeliveryTag {
    /// The consumer (one per queue subscription) inside the queue actor.
    pub consumer: u64,
    /// The delivery within that consumer.
    pub tag: u64,
}

/// What a push into the outbox did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushOutcome {
    /// Queued.
    Queued,
    /// Queued after dropping the oldest pending topic message.
    DroppedOldest,
    /// The outbox is closed (session gone or being disconnected).
    Closed,
}

/// A bounded, multi-producer, single-consumer delivery queue.
#[derive(Debug)]
pub(crate) struct Outbox {
    // std Mutex: held only for a push or a swap, never across an `.await`.
    items: Mutex<VecDeque<Outbound>>,
    ready: Notify,
    closed: AtomicBool,
    capacity: usize,
    policy: SlowConsumerPolicy,
    stats: Arc<Stats>,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, policy: SlowConsumerPolicy, stats: Arc<Stats>) -> Self {
        Outbox {
            items: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
            policy,
            stats,
        }
    }

    /// Pushes a topic delivery, applying the slow-consumer policy when full.
    pub(crate) fn push_topic(&self, delivery: Delivery) -> PushOutcome {
        if self.is_closed() {
            return PushOutcome::Closed;
        }
        let mut items = lock(&self.items);
        let mut outcome = PushOutcome::Queued;
        if items.len() >= self.capacity {
            match self.policy {
                SlowConsumerPolicy::DropOldest => {
                    let oldest_topic = items
                        .iter()
                        .position(|o| matches!(o, Outbound::Delivery(d) if d.queue.is_none()));
                    match oldest_topic {
                        Some(i) => {
                            items.remove(i);
                            outcome = PushOutcome::DroppedOldest;
                            self.stats.slow_consumer_drops.inc();
                        }
                        None => {
                            // Only queue deliveries and control items: the
                            // new topic message is the one to go.
                            self.stats.slow_consumer_drops.inc();
                            return PushOutcome::DroppedOldest;
                        }
                    }
                }
                SlowConsumerPolicy::Disconnect => {
                    drop(items);
                    self.stats.slow_consumer_disconnects.inc();
                    self.close_with_error(format!(
                        "slow consumer: more than {} deliveries pending",
                        self.capacity
                    ));
                    return PushOutcome::Closed;
                }
            }
        }
        let was_empty = items.is_empty();
        items.push_back(Outbound::Delivery(delivery));
        drop(items);
        if was_empty {
            self.ready.notify_one();
        }
        outcome
    }

    /// Pushes an item that must not be dropped (queue deliveries are bounded
    /// by credit; receipts and errors are bounded by the session's frames).
    pub(crate) fn push(&self, item: Outbound) -> PushOutcome {
        if self.is_closed() {
            return PushOutcome::Closed;
        }
        let mut items = lock(&self.items);
        let was_empty = items.is_empty();
        items.push_back(item);
        drop(items);
        if was_empty {
            self.ready.notify_one();
        }
        PushOutcome::Queued
    }

    /// Queues a RECEIPT.
    pub(crate) fn receipt(&self, receipt_id: ByteString) {
        self.push(Outbound::Receipt(receipt_id));
    }

    /// Queues a fatal ERROR and refuses everything after it.
    pub(crate) fn close_with_error(&self, message: String) {
        self.refuse(message, None);
    }

    /// Queues a fatal ERROR (for the frame that asked for `receipt_id`, if
    /// any) and refuses everything after it.
    pub(crate) fn refuse(&self, message: String, receipt_id: Option<ByteString>) {
        let mut items = lock(&self.items);
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        items.push_back(Outbound::Fatal {
            message,
            receipt_id,
        });
        drop(items);
        self.ready.notify_one();
    }

    /// Refuses further pushes (the session is ending).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Whether pushes are refused.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Moves every pending item into `into` (which should be empty).
    pub(crate) fn drain_into(&self, into: &mut VecDeque<Outbound>) {
        let mut items = lock(&self.items);
        std::mem::swap(&mut *items, into);
    }

    /// Completes when an item may be ready. Cancel-safe.
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it (the
/// queue's contents stay consistent: every operation is a single push/swap).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
