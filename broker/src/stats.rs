//! Broker-wide counters, exported as Prometheus metrics by the admin
//! listener (`docs/metrics.md` lists them all).
//!
//! Everything here is a relaxed atomic; nothing takes a lock. Counters on
//! the per-frame and per-message paths (frames and bytes by command,
//! messages by destination kind, the publish-to-deliver histogram) are
//! *striped*: each thread adds to its own cache-line-aligned copy, so a
//! million frames a second on several cores never bounce one cache line
//! between them. Reading sums the stripes; only the admin listener reads.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use stompede_codec::Command;

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

/// How a client reached the broker; the `transport` label of the
/// connection metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// STOMP over plain TCP (also in-process connections).
    Tcp,
    /// STOMP over WebSocket.
    Ws,
    /// STOMP over TCP with TLS.
    TcpTls,
    /// STOMP over WebSocket with TLS.
    Wss,
}

impl Transport {
    /// Every transport, in label order.
    pub const ALL: [Transport; 4] = [
        Transport::Tcp,
        Transport::Ws,
        Transport::TcpTls,
        Transport::Wss,
    ];

    /// The label value: `tcp`, `ws`, `tcp+tls` or `wss`.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::TcpTls => "tcp+tls",
            Transport::Wss => "wss",
        }
    }

    /// The transport named by a label (as a transport's `kind()` returns
    /// it); unknown names count as `tcp`.
    pub fn from_label(label: &str) -> Transport {
        Transport::ALL
            .into_iter()
            .find(|t| t.label() == label)
            .unwrap_or(Transport::Tcp)
    }
}

/// The `kind` label of the message metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationKind {
    /// Topic-like destinations: `/topic/`, `/temp-queue/`, `/reply-queue/`,
    /// `/user/`.
    Topic,
    /// `/queue/` destinations (and durable subscription queues).
    Queue,
}

impl DestinationKind {
    /// Every kind, in label order.
    pub const ALL: [DestinationKind; 2] = [DestinationKind::Topic, DestinationKind::Queue];

    /// The label value: `topic` or `queue`.
    pub fn label(self) -> &'static str {
        match self {
            DestinationKind::Topic => "topic",
            DestinationKind::Queue => "queue",
        }
    }
}

/// What happened to a message, counted by [`DestinationKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageEvent {
    /// Routed from a SEND.
    Published,
    /// Written to a client as a MESSAGE.
    Delivered,
    /// Acknowledged (ACK, or written in `auto` mode for queues).
    Acked,
    /// Refused with NACK.
    Nacked,
    /// Put back for another delivery.
    Redelivered,
    /// Moved to a dead-letter queue.
    DeadLettered,
    /// Expired before delivery.
    Expired,
    /// Discarded: slow consumer (topics), overflow `drop-oldest` or no
    /// dead-letter queue (queues).
    Dropped,
}

impl MessageEvent {
    /// Every event, in metric order.
    pub const ALL: [MessageEvent; 8] = [
        MessageEvent::Published,
        MessageEvent::Delivered,
        MessageEvent::Acked,
        MessageEvent::Nacked,
        MessageEvent::Redelivered,
        MessageEvent::DeadLettered,
        MessageEvent::Expired,
        MessageEvent::Dropped,
    ];

    /// The word in the metric name `stompede_messages_{word}_total`.
    pub fn name(self) -> &'static str {
        match self {
            MessageEvent::Published => "published",
            MessageEvent::Delivered => "delivered",
            MessageEvent::Acked => "acked",
            MessageEvent::Nacked => "nacked",
            MessageEvent::Redelivered => "redelivered",
            MessageEvent::DeadLettered => "dead_lettered",
            MessageEvent::Expired => "expired",
            MessageEvent::Dropped => "dropped",
        }
    }
}

/// Upper bounds (nanoseconds) of the publish-to-deliver latency buckets:
/// 10 µs to 10 s, then `+Inf`.
pub const DELIVERY_LATENCY_BOUNDS: [u64; 20] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    u64::MAX,
];

/// Upper bounds (nanoseconds) of the store sync (fsync) latency buckets:
/// 100 µs to 10 s, then `+Inf`.
pub const FSYNC_LATENCY_BOUNDS: [u64; 17] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    u64::MAX,
];

/// A latency histogram with fixed buckets: one relaxed atomic add for the
/// bucket and one for the sum per observation, no lock.
///
/// `bounds` are inclusive upper bounds in nanoseconds, ascending; the last
/// one must be `u64::MAX` (it is the `+Inf` bucket).
#[derive(Debug)]
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    buckets: [AtomicU64; N],
    sum_ns: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    /// An empty histogram over `bounds`.
    pub const fn new(bounds: &'static [u64; N]) -> Self {
        Histogram {
            bounds,
            buckets: [const { AtomicU64::new(0) }; N],
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // The last bound is u64::MAX, so the index is always in range;
        // `min` keeps it so even for a malformed bound list.
        let i = self.bounds.partition_point(|b| *b < ns).min(N - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram's counts to `into`.
    fn add_to(&self, into: &mut HistogramSnapshot) {
        if into.buckets.is_empty() {
            into.buckets = self.bounds.iter().map(|b| (*b, 0)).collect();
        }
        for (slot, bucket) in into.buckets.iter_mut().zip(&self.buckets) {
            slot.1 += bucket.load(Ordering::Relaxed);
        }
        into.sum_ns = into
            .sum_ns
            .saturating_add(self.sum_ns.load(Ordering::Relaxed));
    }

    /// The counts so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot::default();
        self.add_to(&mut out);
        out
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound in ns, observations in this bucket)`, not cumulative;
    /// the last bound is `u64::MAX` (`+Inf`).
    pub buckets: Vec<(u64, u64)>,
    /// The sum of all observations, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// How many observations.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

/// Stripes of the hot counters. More stripes than a broker has worker
/// threads, so each thread normally owns one.
const STRIPES: usize = 16;

const COMMANDS: usize = Command::ALL.len();
const KINDS: usize = DestinationKind::ALL.len();
const EVENTS: usize = MessageEvent::ALL.len();
const TRANSPORTS: usize = Transport::ALL.len();

static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// This thread's stripe, assigned round-robin on first use.
fn stripe_index() -> usize {
    STRIPE.with(|s| {
        let i = s.get();
        if i < STRIPES {
            return i;
        }
        let i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
        s.set(i);
        i
    })
}

/// One thread's share of the hot counters, on cache lines of its own.
#[derive(Debug)]
#[repr(align(128))]
struct Stripe {
    frames_in: [AtomicU64; COMMANDS],
    frames_out: [AtomicU64; COMMANDS],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    messages: [[AtomicU64; EVENTS]; KINDS],
    delivery_latency: Histogram<{ DELIVERY_LATENCY_BOUNDS.len() }>,
}

impl Stripe {
    const fn new() -> Stripe {
        Stripe {
            frames_in: [const { AtomicU64::new(0) }; COMMANDS],
            frames_out: [const { AtomicU64::new(0) }; COMMANDS],
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            messages: [const { [const { AtomicU64::new(0) }; EVENTS] }; KINDS],
            delivery_latency: Histogram::new(&DELIVERY_LATENCY_BOUNDS),
        }
    }
}

/// Connection counts of one transport.
#[derive(Debug, Default)]
struct ByTransport {
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
}

/// What the broker counts.
///
/// The plain [`Counter`] fields are the original counters, kept for
/// library users ([`crate::BrokerHandle::stats`]); the labelled metrics
/// come from the methods (see each field for how they relate).
#[derive(Debug)]
pub struct Stats {
    /// Connections accepted, all transports ([`Stats::connection_accepted`]
    /// keeps it).
    pub connections_accepted: Counter,
    /// Connections open now (gauge), all transports
    /// ([`Stats::connection_opened`] and [`Stats::connection_closed`] keep
    /// it).
    pub connections_open: Counter,
    /// Connections refused at `max_connections`, all transports
    /// ([`Stats::connection_refused`] keeps it).
    pub connections_refused: Counter,
    /// Topic messages dropped from a slow subscriber's outbox; also
    /// rendered as `stompede_messages_dropped_total{kind="topic"}`.
    pub slow_consumer_drops: Counter,
    /// Slow subscribers disconnected.
    pub slow_consumer_disconnects: Counter,
    /// Queue messages redelivered (`kind="queue"`).
    pub messages_redelivered: Counter,
    /// Queue messages refused or discarded by the overflow policy.
    pub queue_overflows: Counter,
    /// Queue messages that expired before delivery (`kind="queue"`).
    pub messages_expired: Counter,
    /// Queue messages moved to a dead-letter queue (`kind="queue"`).
    pub messages_dead_lettered: Counter,
    /// ERROR frames sent.
    pub errors_sent: Counter,
    by_transport: [ByTransport; TRANSPORTS],
    stripes: Box<[Stripe; STRIPES]>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            connections_accepted: Counter::default(),
            connections_open: Counter::default(),
            connections_refused: Counter::default(),
            slow_consumer_drops: Counter::default(),
            slow_consumer_disconnects: Counter::default(),
            messages_redelivered: Counter::default(),
            queue_overflows: Counter::default(),
            messages_expired: Counter::default(),
            messages_dead_lettered: Counter::default(),
            errors_sent: Counter::default(),
            by_transport: Default::default(),
            stripes: Box::new([const { Stripe::new() }; STRIPES]),
        }
    }
}

impl Stats {
    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    fn sum(&self, field: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        self.stripes
            .iter()
            .map(|s| field(s).load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    // --- hot path: sessions, router, queue actors ---

    /// A frame of `bytes` bytes (command line to NUL) was read from a
    /// client. Heart-beats are not frames.
    #[inline]
    pub fn frame_in(&self, command: Command, bytes: usize) {
        let s = self.stripe();
        s.frames_in[command as usize].fetch_add(1, Ordering::Relaxed);
        s.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A frame of `bytes` bytes was written to a client.
    #[inline]
    pub fn frame_out(&self, command: Command, bytes: usize) {
        let s = self.stripe();
        s.frames_out[command as usize].fetch_add(1, Ordering::Relaxed);
        s.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `n` messages of `kind` that went through `event`.
    #[inline]
    pub fn messages(&self, kind: DestinationKind, event: MessageEvent, n: u64) {
        self.stripe().messages[kind as usize][event as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// A message was routed from a SEND (the router calls this).
    #[inline]
    pub fn published(&self, kind: DestinationKind) {
        self.messages(kind, MessageEvent::Published, 1);
    }

    /// A MESSAGE frame was written to a client (the session calls this).
    #[inline]
    pub fn delivered(&self, kind: DestinationKind) {
        self.messages(kind, MessageEvent::Delivered, 1);
    }

    /// `n` deliveries were acknowledged.
    #[inline]
    pub fn acked(&self, kind: DestinationKind, n: u64) {
        self.messages(kind, MessageEvent::Acked, n);
    }

    /// `n` deliveries were refused with NACK.
    #[inline]
    pub fn nacked(&self, kind: DestinationKind, n: u64) {
        self.messages(kind, MessageEvent::Nacked, n);
    }

    /// Records the time from a message's publication
    /// ([`stompede_plugin::Message::published_at`]) to its MESSAGE frame
    /// being written.
    #[inline]
    pub fn observe_delivery_latency(&self, elapsed: Duration) {
        self.stripe().delivery_latency.observe(elapsed);
    }

    // --- connections: the accept loops ---

    /// A connection was accepted on a `transport` listener (before the
    /// connection limit is checked).
    pub fn connection_accepted(&self, transport: Transport) {
        self.connections_accepted.inc();
        self.by_transport[transport as usize]
            .accepted
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was refused because `max_connections` was reached.
    pub fn connection_refused(&self, transport: Transport) {
        self.connections_refused.inc();
        self.by_transport[transport as usize]
            .refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection starts being served; pair with
    /// [`Stats::connection_closed`].
    pub fn connection_opened(&self, transport: Transport) {
        self.connections_open.inc();
        self.by_transport[transport as usize]
            .open
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A connection opened with [`Stats::connection_opened`] ended.
    pub fn connection_closed(&self, transport: Transport) {
        self.connections_open.sub(1);
        self.by_transport[transport as usize]
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }

    // --- reading (the admin listener) ---

    /// Frames of `command` read from clients.
    pub fn frames_in(&self, command: Command) -> u64 {
        self.sum(|s| &s.frames_in[command as usize])
    }

    /// Frames of `command` written to clients.
    pub fn frames_out(&self, command: Command) -> u64 {
        self.sum(|s| &s.frames_out[command as usize])
    }

    /// Frame bytes read from clients.
    pub fn bytes_in(&self) -> u64 {
        self.sum(|s| &s.bytes_in)
    }

    /// Frame bytes written to clients.
    pub fn bytes_out(&self) -> u64 {
        self.sum(|s| &s.bytes_out)
    }

    /// Messages of `kind` that went through `event`, including the
    /// original counters that belong to that series.
    pub fn message_count(&self, kind: DestinationKind, event: MessageEvent) -> u64 {
        let striped = self.sum(|s| &s.messages[kind as usize][event as usize]);
        let original = match (kind, event) {
            (DestinationKind::Topic, MessageEvent::Dropped) => self.slow_consumer_drops.get(),
            (DestinationKind::Queue, MessageEvent::Redelivered) => self.messages_redelivered.get(),
            (DestinationKind::Queue, MessageEvent::DeadLettered) => {
                self.messages_dead_lettered.get()
            }
            (DestinationKind::Queue, MessageEvent::Expired) => self.messages_expired.get(),
            _ => 0,
        };
        striped.wrapping_add(original)
    }

    /// Connections accepted on `transport`.
    pub fn connections_accepted_on(&self, transport: Transport) -> u64 {
        self.by_transport[transport as usize]
            .accepted
            .load(Ordering::Relaxed)
    }

    /// Connections refused on `transport`.
    pub fn connections_refused_on(&self, transport: Transport) -> u64 {
        self.by_transport[transport as usize]
            .refused
            .load(Ordering::Relaxed)
    }

    /// Connections open now on `transport`.
    pub fn connections_open_on(&self, transport: Transport) -> u64 {
        self.by_transport[transport as usize]
            .open
            .load(Ordering::Relaxed)
    }

    /// The publish-to-deliver latency histogram.
    pub fn delivery_latency(&self) -> HistogramSnapshot {
        let mut out = HistogramSnapshot::default();
        for s in self.stripes.iter() {
            s.delivery_latency.add_to(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_index_the_arrays_in_order() {
        for (i, c) in Command::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            assert_eq!(Transport::from_label(t.label()), *t);
        }
        for (i, k) in DestinationKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        for (i, e) in MessageEvent::ALL.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        static BOUNDS: [u64; 3] = [1_000, 2_000, u64::MAX];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_nanos(1_000));
        h.observe(Duration::from_nanos(1_001));
        h.observe(Duration::from_secs(1));
        h.observe(Duration::from_secs(100));
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1_000, 1), (2_000, 1), (u64::MAX, 2)]);
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 101_000_002_001);
    }

    #[test]
    fn striped_counters_sum_across_threads() {
        let stats = std::sync::Arc::new(Stats::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let stats = std::sync::Arc::clone(&stats);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        stats.frame_in(Command::Send, 10);
                        stats.frame_out(Command::Message, 20);
                        stats.published(DestinationKind::Topic);
                        stats.observe_delivery_latency(Duration::from_micros(30));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(stats.frames_in(Command::Send), 20_000);
        assert_eq!(stats.frames_in(Command::Message), 0);
        assert_eq!(stats.frames_out(Command::Message), 20_000);
        assert_eq!(stats.bytes_in(), 200_000);
        assert_eq!(stats.bytes_out(), 400_000);
        assert_eq!(
            stats.message_count(DestinationKind::Topic, MessageEvent::Published),
            20_000
        );
        let latency = stats.delivery_latency();
        assert_eq!(latency.count(), 20_000);
        assert_eq!(latency.buckets[2], (50_000, 20_000));
    }

    #[test]
    fn totals_and_labelled_series_agree() {
        let stats = Stats::default();
        stats.connection_opened(Transport::Wss);
        stats.connection_opened(Transport::Tcp);
        stats.connection_opened(Transport::Tcp);
        stats.connection_closed(Transport::Tcp);
        stats.connection_refused(Transport::Ws);
        assert_eq!(stats.connections_open_on(Transport::Tcp), 1);
        assert_eq!(stats.connections_open_on(Transport::Wss), 1);
        assert_eq!(stats.connections_open.get(), 2);
        assert_eq!(stats.connections_refused_on(Transport::Ws), 1);
        assert_eq!(stats.connections_refused.get(), 1);
        stats.delivered(DestinationKind::Topic);
        stats.delivered(DestinationKind::Queue);
        assert_eq!(
            stats.message_count(DestinationKind::Topic, MessageEvent::Delivered),
            1
        );
        assert_eq!(
            stats.message_count(DestinationKind::Queue, MessageEvent::Delivered),
            1
        );
        stats.messages_expired.inc();
        assert_eq!(
            stats.message_count(DestinationKind::Queue, MessageEvent::Expired),
            1
        );
    }
}
