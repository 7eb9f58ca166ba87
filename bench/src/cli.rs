//! Command-line options and the settings they resolve to.

use crate::cluster::options::{ClusterArgs, ClusterSettings};
use crate::conn::TransportKind;
use crate::scan::ParserKind;
use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::path::PathBuf;

/// The benchmark scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// 1 producer → 1 subscriber on a topic; received msgs/s.
    #[value(name = "topic-1to1")]
    Topic1to1,
    /// 1 producer → many subscribers on a topic; delivered msgs/s.
    TopicFanout,
    /// p50/p99/p99.9 latency at a fixed publish rate.
    Latency,
    /// Many idle WebSocket connections: connect time and broker RSS.
    IdleConnections,
    /// Producers → a queue with competing ACKing consumers; acked msgs/s.
    QueueCompeting,
    /// Persistent SENDs, each confirmed by a RECEIPT once durable, to a
    /// queue with competing ACKing consumers; acked msgs/s.
    PersistentQueue,
    /// Fill a queue with persistent messages, restart the broker on the
    /// same store, time the recovery.
    Recovery,
    /// Chat: history pages of a room with 1,000,000 stored messages;
    /// p99 request → last event of the page.
    ChatHistory,
    /// Chat: resume of 10,000 missed messages (SUBSCRIBE with
    /// `x-since-seq` → `replay-end`).
    ChatResume,
    /// Chat: posts to a room with 1,000 subscribed members; deliveries/s.
    ChatFanout,
    /// Cluster: publisher on node 1 → subscriber on node 2, through Kafka;
    /// received msgs/s.
    #[value(name = "cluster-1to1")]
    Cluster1to1,
    /// Cluster: publisher on node 1 → subscriptions on nodes 2..;
    /// deliveries/s.
    ClusterFanout,
    /// Cluster: node 1 → node 2 latency at each `--cluster-rate`, with the
    /// bare Kafka round trip to the same server in the same run.
    ClusterLatency,
}

impl Scenario {
    /// The cluster scenarios (they need Kafka and several nodes).
    pub const CLUSTER: [Scenario; 3] = [
        Scenario::Cluster1to1,
        Scenario::ClusterFanout,
        Scenario::ClusterLatency,
    ];

    /// All single-broker scenarios in the default order (the cluster
    /// scenarios run only when named).
    pub const ALL: [Scenario; 10] = [
        Scenario::Topic1to1,
        Scenario::TopicFanout,
        Scenario::Latency,
        Scenario::IdleConnections,
        Scenario::QueueCompeting,
        Scenario::PersistentQueue,
        Scenario::Recovery,
        Scenario::ChatHistory,
        Scenario::ChatResume,
        Scenario::ChatFanout,
    ];

    /// The scenario's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Topic1to1 => "topic-1to1",
            Scenario::TopicFanout => "topic-fanout",
            Scenario::Latency => "latency",
            Scenario::IdleConnections => "idle-connections",
            Scenario::QueueCompeting => "queue-competing",
            Scenario::PersistentQueue => "persistent-queue",
            Scenario::Recovery => "recovery",
            Scenario::ChatHistory => "chat-history",
            Scenario::ChatResume => "chat-resume",
            Scenario::ChatFanout => "chat-fanout",
            Scenario::Cluster1to1 => "cluster-1to1",
            Scenario::ClusterFanout => "cluster-fanout",
            Scenario::ClusterLatency => "cluster-latency",
        }
    }

    /// Whether the scenario runs against a cluster.
    pub fn is_cluster(self) -> bool {
        Scenario::CLUSTER.contains(&self)
    }

    /// Whether the scenario needs a broker with an on-disk store.
    pub fn needs_disk(self) -> bool {
        matches!(self, Scenario::PersistentQueue | Scenario::Recovery)
    }

    /// Whether the scenario starts (with `--start-broker`) brokers of its
    /// own: recovery restarts one; the chat scenarios need an on-disk
    /// store and a `[chat]` configuration (chat-history on a cached one).
    pub fn starts_own_broker(self) -> bool {
        matches!(
            self,
            Scenario::Recovery
                | Scenario::ChatHistory
                | Scenario::ChatResume
                | Scenario::ChatFanout
        )
    }

    /// Whether the scenario runs over TCP only.
    pub fn tcp_only(self) -> bool {
        matches!(self, Scenario::Recovery | Scenario::ChatHistory) || self.is_cluster()
    }
}

/// When the broker's store makes a persistent message durable
/// (`[store] fsync` of a started broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncChoice {
    /// One sync per batch of waiting publishers.
    Always,
    /// Writes gathered for `fsync_interval_ms`, then one sync (the
    /// broker's default).
    Batch,
    /// No sync before the RECEIPT.
    Never,
}

impl FsyncChoice {
    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncChoice::Always => "always",
            FsyncChoice::Batch => "batch",
            FsyncChoice::Never => "never",
        }
    }
}

/// Which transports to run the scenarios over (idle-connections is always
/// WebSocket, recovery always TCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    /// STOMP over TCP.
    Tcp,
    /// STOMP over WebSocket.
    Ws,
    /// Each scenario over TCP, then over WebSocket.
    Both,
}

/// How producers avoid outrunning the broker on topics and queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// End-to-end window: at most `--window` deliveries not yet received per
    /// subscriber connection (no loss from the broker's slow-consumer
    /// policy; the default).
    Window,
    /// Every `--receipt-every`-th SEND asks for a receipt; at most
    /// `--receipts-in-flight` receipts outstanding. Bounds what the broker
    /// has not yet routed, not what subscribers have not yet read.
    Receipt,
    /// Only TCP backpressure (a topic broker that drops for slow consumers
    /// will show losses).
    None,
}

/// Load benchmark for STOMP brokers over TCP and WebSocket.
///
/// Runs bounded scenarios against a broker, checks that every message
/// arrived exactly once and in order, and prints a results table. Exits
/// non-zero if any scenario lost, duplicated or reordered a message, or
/// failed.
#[derive(Debug, Parser)]
#[command(name = "stompede-bench", version, about, long_about = None)]
pub struct Args {
    /// Scenarios to run (default: all ten, in this order).
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,

    /// The broker's STOMP-over-TCP address.
    #[arg(long, default_value = "tcp://127.0.0.1:61613")]
    pub tcp: String,
    /// The broker's STOMP-over-WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:15674/ws")]
    pub ws: String,
    /// Transport for topic-1to1, topic-fanout, latency and queue-competing
    /// (idle-connections always uses WebSocket).
    #[arg(long, value_enum, default_value = "tcp")]
    pub transport: TransportChoice,

    /// Start this stompede binary on free ports (instead of --tcp/--ws),
    /// with a raised fd limit and `--log-level warn`, and stop it at the end.
    /// Its store is in memory (`--memory-store`), except for
    /// persistent-queue and recovery: a fresh temporary `--data-dir`.
    #[arg(long, value_name = "PATH")]
    pub start_broker: Option<PathBuf>,
    /// With --start-broker: the `[store] fsync` policy of the brokers
    /// started for persistent-queue and recovery.
    #[arg(long, value_enum, default_value = "batch")]
    pub fsync: FsyncChoice,
    /// With --start-broker: `[store] fsync_interval_ms` of those brokers
    /// [default: the broker's, 2].
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
    /// With --start-broker: one broker for all scenarios (default: a fresh
    /// broker per scenario, so memory and failures do not carry over).
    #[arg(long)]
    pub reuse_broker: bool,
    /// The broker's pid, for RSS and CPU readings (default: found from the
    /// TCP listener's port through /proc).
    #[arg(long)]
    pub broker_pid: Option<u32>,

    /// Small smoke run: a few thousand messages per scenario, 200 idle
    /// connections (explicit options still win).
    #[arg(long)]
    pub quick: bool,
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also exit non-zero when a scenario misses the project's target.
    #[arg(long)]
    pub enforce_targets: bool,

    /// topic-1to1: messages to send [default: 1000000; quick 5000].
    #[arg(long)]
    pub messages: Option<u64>,
    /// topic-fanout: messages to send [default: 20000; quick 2000].
    #[arg(long)]
    pub fanout_messages: Option<u64>,
    /// topic-fanout: subscriptions [default: 1000; quick 100].
    #[arg(long)]
    pub subscribers: Option<usize>,
    /// topic-fanout: connections the subscriptions are spread over
    /// (round-robin) [default: 50; quick 10]. Use the subscriber count for
    /// one connection per subscription.
    #[arg(long)]
    pub fanout_connections: Option<usize>,

    /// latency: publish rate in msgs/s [default: 10000; quick 2000].
    #[arg(long)]
    pub latency_rate: Option<u64>,
    /// latency: seconds of publishing [default: 10; quick 2].
    #[arg(long)]
    pub latency_secs: Option<f64>,
    /// latency: leading seconds left out of the percentiles (still checked
    /// for loss and order) [default: 1; quick 0.5].
    #[arg(long)]
    pub latency_warmup_secs: Option<f64>,

    /// idle-connections: WebSocket connections to open [default: 10000;
    /// quick 200].
    #[arg(long)]
    pub idle_connections: Option<usize>,
    /// idle-connections: connection attempts in flight at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// idle-connections: pause before reading the broker's RSS, in ms.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,

    /// queue-competing: messages to send in total [default: 1000000; quick
    /// 5000].
    #[arg(long)]
    pub queue_messages: Option<u64>,
    /// queue-competing: producers (each its own connection).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// queue-competing: competing consumers (each its own connection).
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// queue-competing and persistent-queue: `prefetch-count` of each
    /// consumer.
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u32,
    /// queue-competing and persistent-queue: most messages sent but not yet
    /// received by any consumer.
    #[arg(long, default_value_t = 20_000)]
    pub queue_window: u64,

    /// persistent-queue: messages to send in total [default: 500000; quick
    /// 2000].
    #[arg(long)]
    pub persistent_messages: Option<u64>,
    /// persistent-queue: producers (each its own connection).
    #[arg(long, default_value_t = 4)]
    pub persistent_producers: usize,
    /// persistent-queue: competing consumers (each its own connection;
    /// `--prefetch` applies).
    #[arg(long, default_value_t = 4)]
    pub persistent_consumers: usize,
    /// persistent-queue: most SENDs per producer not yet confirmed by a
    /// RECEIPT (`--queue-window` also bounds how far all producers run
    /// ahead of the consumers).
    #[arg(long, default_value_t = 1000)]
    pub persistent_window: u64,

    /// recovery: persistent messages to fill the queue with [default:
    /// 1000000; quick 5000].
    #[arg(long)]
    pub recovery_messages: Option<u64>,
    /// recovery: messages a consumer reads (and checks) after the restart.
    #[arg(long, default_value_t = 1000)]
    pub recovery_verify: u64,

    /// chat-history: messages stored in the room [default: 1000000; quick
    /// 2000].
    #[arg(long)]
    pub chat_messages: Option<u64>,
    /// chat-history: history pages requested (one client, one after the
    /// other, at random positions) [default: 2000; quick 200].
    #[arg(long)]
    pub chat_pages: Option<u64>,
    /// chat-history: events per page (`x-limit`).
    #[arg(long, default_value_t = 50)]
    pub chat_page_size: u64,
    /// chat-history and chat-resume: connections posting (pipelined) to
    /// fill a room.
    #[arg(long, default_value_t = 4)]
    pub chat_fillers: usize,
    /// chat-history: where filled data directories are kept between runs
    /// [default: `bench-cache` beside the `release` directory of --start-broker, i.e. under the target directory].
    #[arg(long, value_name = "DIR")]
    pub chat_cache: Option<PathBuf>,
    /// chat-history: fill a fresh data directory even if a cached one
    /// exists (and replace the cached one).
    #[arg(long)]
    pub chat_refill: bool,
    /// chat-history: use a temporary data directory, not the cache.
    #[arg(long)]
    pub chat_no_cache: bool,
    /// chat-resume: messages missed while away [default: 10000; quick
    /// 2000].
    #[arg(long)]
    pub chat_missed: Option<u64>,
    /// chat-resume: resumes measured (each after as many new messages)
    /// [default: 5; quick 2].
    #[arg(long)]
    pub chat_resumes: Option<u64>,
    /// chat-fanout: members, each its own connection and user, subscribed
    /// to the room [default: 1000; quick 20].
    #[arg(long)]
    pub chat_members: Option<usize>,
    /// chat-fanout: posts in all [default: 5000; quick 2000].
    #[arg(long)]
    pub chat_posts: Option<u64>,
    /// chat-fanout: posting connections (each its own user).
    #[arg(long, default_value_t = 2)]
    pub chat_publishers: usize,
    /// chat scenarios: posts per connection not yet confirmed by a RECEIPT
    /// (all connections together must stay below the room's queue,
    /// `[chat] room_queue`, 4096 by default) [default: 3000 / connections].
    #[arg(long)]
    pub chat_in_flight: Option<u64>,

    /// Message body size in bytes (at least 64; holds the sequence record).
    #[arg(long, default_value_t = 100)]
    pub body_size: usize,
    /// Producer flow control on topics.
    #[arg(long, value_enum, default_value = "window")]
    pub flow: Flow,
    /// --flow window: most deliveries sent but not yet received per
    /// subscriber connection (keep below the broker's outbox capacity,
    /// 8192 by default for stompede).
    #[arg(long, default_value_t = 4096)]
    pub window: u64,
    /// --flow receipt: ask for a receipt every this many SENDs.
    #[arg(long, default_value_t = 1000)]
    pub receipt_every: u64,
    /// --flow receipt: most receipts outstanding.
    #[arg(long, default_value_t = 8)]
    pub receipts_in_flight: u64,
    /// SEND frames per write (per syscall over TCP).
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Frame parser for received frames.
    #[arg(long, value_enum, default_value = "fast")]
    pub parser: ParserKind,
    /// Runtime threads of the load generator (1 = a current-thread runtime;
    /// the latency producer always has its own thread).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Each scenario stops sending after this many seconds even if not all
    /// messages were sent (the rate is then over what was sent).
    #[arg(long)]
    pub max_secs: Option<f64>,
    /// Seconds to wait for in-flight messages after the last send (and
    /// the longest a producer waits for progress) before declaring them
    /// lost.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,

    /// Only time the two frame parsers on synthetic MESSAGE frames and exit.
    #[arg(long)]
    pub measure_parsers: bool,

    /// The cluster scenarios' options.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Resolved settings (quick-mode defaults applied).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// topic-1to1 messages.
    pub messages: u64,
    /// topic-fanout messages.
    pub fanout_messages: u64,
    /// topic-fanout subscriptions.
    pub subscribers: usize,
    /// topic-fanout connections.
    pub fanout_connections: usize,
    /// latency rate (msgs/s).
    pub latency_rate: u64,
    /// latency publishing time (s).
    pub latency_secs: f64,
    /// latency warm-up (s).
    pub latency_warmup_secs: f64,
    /// idle-connections count.
    pub idle_connections: usize,
    /// idle-connections concurrent attempts.
    pub connect_concurrency: usize,
    /// idle-connections settle time (ms).
    pub settle_ms: u64,
    /// queue-competing messages.
    pub queue_messages: u64,
    /// queue-competing producers.
    pub producers: usize,
    /// queue-competing consumers.
    pub consumers: usize,
    /// queue-competing prefetch.
    pub prefetch: u32,
    /// queue-competing window.
    pub queue_window: u64,
    /// persistent-queue messages.
    pub persistent_messages: u64,
    /// persistent-queue producers.
    pub persistent_producers: usize,
    /// persistent-queue consumers.
    pub persistent_consumers: usize,
    /// persistent-queue unconfirmed SENDs per producer.
    pub persistent_window: u64,
    /// recovery messages.
    pub recovery_messages: u64,
    /// recovery: messages checked after the restart.
    pub recovery_verify: u64,
    /// fsync policy of started brokers (persistent-queue, recovery).
    pub fsync: FsyncChoice,
    /// fsync interval of started brokers, if set.
    pub fsync_interval_ms: Option<u64>,
    /// chat-history room size.
    pub chat_messages: u64,
    /// chat-history pages.
    pub chat_pages: u64,
    /// chat-history page size.
    pub chat_page_size: u64,
    /// Filling connections.
    pub chat_fillers: usize,
    /// Cache directory for filled chat stores (None: no cache).
    pub chat_cache: Option<PathBuf>,
    /// Refill even if cached.
    pub chat_refill: bool,
    /// chat-resume missed messages.
    pub chat_missed: u64,
    /// chat-resume rounds.
    pub chat_resumes: u64,
    /// chat-fanout members.
    pub chat_members: usize,
    /// chat-fanout posts.
    pub chat_posts: u64,
    /// chat-fanout publishers.
    pub chat_publishers: usize,
    /// Unconfirmed posts per connection (None: 3000 / connections).
    pub chat_in_flight: Option<u64>,
    /// Body size.
    pub body_size: usize,
    /// Topic flow control.
    pub flow: Flow,
    /// Window (deliveries per subscriber connection).
    pub window: u64,
    /// Receipt interval.
    pub receipt_every: u64,
    /// Receipts outstanding.
    pub receipts_in_flight: u64,
    /// Frames per write.
    pub batch: usize,
    /// Parser.
    pub parser: ParserKind,
    /// Runtime threads.
    pub threads: usize,
    /// Sending time bound per scenario (s).
    pub max_secs: f64,
    /// Drain / stall time bound (s).
    pub drain_secs: f64,
    /// Quick mode.
    pub quick: bool,
    /// The cluster scenarios' settings.
    pub cluster: ClusterSettings,
}

impl Args {
    /// The scenarios to run.
    pub fn scenario_list(&self) -> Vec<Scenario> {
        if self.scenarios.is_empty() {
            Scenario::ALL.to_vec()
        } else {
            self.scenarios.clone()
        }
    }

    /// The transports for `scenario`.
    pub fn transports_for(&self, scenario: Scenario) -> Vec<TransportKind> {
        if scenario == Scenario::IdleConnections {
            return vec![TransportKind::Ws];
        }
        if scenario.tcp_only() {
            return vec![TransportKind::Tcp];
        }
        match self.transport {
            TransportChoice::Tcp => vec![TransportKind::Tcp],
            TransportChoice::Ws => vec![TransportKind::Ws],
            TransportChoice::Both => vec![TransportKind::Tcp, TransportKind::Ws],
        }
    }

    /// Applies defaults (full or quick) to unset options.
    pub fn settings(&self) -> Settings {
        let q = self.quick;
        let pick =
            |v: Option<u64>, full: u64, quick: u64| v.unwrap_or(if q { quick } else { full });
        let pick_f =
            |v: Option<f64>, full: f64, quick: f64| v.unwrap_or(if q { quick } else { full });
        let pick_u =
            |v: Option<usize>, full: usize, quick: usize| v.unwrap_or(if q { quick } else { full });
        Settings {
            messages: pick(self.messages, 1_000_000, 5_000),
            fanout_messages: pick(self.fanout_messages, 20_000, 2_000),
            subscribers: pick_u(self.subscribers, 1000, 100).max(1),
            fanout_connections: pick_u(self.fanout_connections, 50, 10).max(1),
            latency_rate: pick(self.latency_rate, 10_000, 2_000).max(1),
            latency_secs: pick_f(self.latency_secs, 10.0, 2.0),
            latency_warmup_secs: pick_f(self.latency_warmup_secs, 1.0, 0.5),
            idle_connections: pick_u(self.idle_connections, 10_000, 200),
            connect_concurrency: self.connect_concurrency.max(1),
            settle_ms: self.settle_ms,
            queue_messages: pick(self.queue_messages, 1_000_000, 5_000),
            producers: self.producers.max(1),
            consumers: self.consumers.max(1),
            prefetch: self.prefetch.max(1),
            queue_window: self.queue_window.max(1),
            persistent_messages: pick(self.persistent_messages, 500_000, 2_000),
            persistent_producers: self.persistent_producers.max(1),
            persistent_consumers: self.persistent_consumers.max(1),
            persistent_window: self.persistent_window.max(1),
            recovery_messages: pick(self.recovery_messages, 1_000_000, 5_000).max(1),
            recovery_verify: self.recovery_verify,
            fsync: self.fsync,
            fsync_interval_ms: self.fsync_interval_ms,
            chat_messages: pick(self.chat_messages, 1_000_000, 2_000).max(1),
            chat_pages: pick(self.chat_pages, 2_000, 200).max(1),
            chat_page_size: self.chat_page_size.max(1),
            chat_fillers: self.chat_fillers.max(1),
            chat_cache: if self.chat_no_cache {
                None
            } else {
                self.chat_cache.clone().or_else(|| {
                    let bin = self.start_broker.as_ref()?;
                    Some(bin.parent()?.parent()?.join("bench-cache"))
                })
            },
            chat_refill: self.chat_refill,
            chat_missed: pick(self.chat_missed, 10_000, 2_000).max(1),
            chat_resumes: pick(self.chat_resumes, 5, 2).max(1),
            chat_members: pick_u(self.chat_members, 1000, 20).max(1),
            chat_posts: pick(self.chat_posts, 5_000, 2_000).max(1),
            chat_publishers: self.chat_publishers.max(1),
            chat_in_flight: self.chat_in_flight.map(|v| v.max(1)),
            body_size: self.body_size.max(crate::body::MIN_BODY),
            flow: self.flow,
            window: self.window.max(1),
            receipt_every: self.receipt_every.max(1),
            receipts_in_flight: self.receipts_in_flight.max(1),
            batch: self.batch.max(1),
            parser: self.parser,
            threads: self.threads.max(1),
            max_secs: pick_f(self.max_secs, 60.0, 20.0),
            drain_secs: self.drain_secs.max(0.1),
            quick: q,
            cluster: self.cluster.settings(q),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_defaults_and_overrides() {
        let a = Args::parse_from(["stompede-bench", "--quick", "--messages", "7"]);
        let s = a.settings();
        assert_eq!(s.messages, 7);
        assert_eq!(s.idle_connections, 200);
        assert_eq!(a.scenario_list().len(), 10);
        assert_eq!(s.chat_messages, 2_000);
        assert_eq!(s.chat_members, 20);
        assert_eq!(s.chat_cache, None);
        assert_eq!(s.recovery_messages, 5_000);
        assert_eq!(s.fsync, FsyncChoice::Batch);
        let b = Args::parse_from([
            "stompede-bench",
            "latency",
            "topic-1to1",
            "--transport",
            "both",
        ]);
        assert_eq!(
            b.scenario_list(),
            vec![Scenario::Latency, Scenario::Topic1to1]
        );
        assert_eq!(b.transports_for(Scenario::Latency).len(), 2);
        assert_eq!(
            b.transports_for(Scenario::IdleConnections),
            vec![TransportKind::Ws]
        );
        assert_eq!(b.settings().messages, 1_000_000);
        assert_eq!(b.settings().recovery_messages, 1_000_000);
        assert_eq!(
            b.transports_for(Scenario::Recovery),
            vec![TransportKind::Tcp]
        );
    }
}
