//! Broker-wide counters. Cheap relaxed atomics; the operations issue exports
//! them as Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts `n` (for gauges).
    pub fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the broker counts.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_accepted: Counter,
    /// Connections open now (gauge).
    pub connections_open: Counter,
    /// Connections refused because `max_connections` was reached.
    pub connections_refused: Counter,
    /// Messages published (SENDs routed).
    pub messages_published: Counter,
    /// MESSAGE frames written to clients.
    pub messages_delivered: Counter,
    /// Topic messages dropped from a slow subscriber's outbox.
    pub slow_consumer_drops: Counter,
    /// Slow subscribers disconnected.
    pub slow_consumer_disconnects: Counter,
    /// Queue messages redelivered.
    pub messages_redelivered: Counter,
    /// Queue messages refused or discarded by the overflow policy.
    pub queue_overflows: Counter,
    /// Queue messages that expired before delivery.
    pub messages_expired: Counter,
    /// Queue messages moved to a dead-letter queue.
    pub messages_dead_lettered: Counter,
    /// ERROR frames sent.
    pub errors_sent: Counter,
}
