//! Queues: one actor per `/queue/...` destination ([`actor`]), reached
//! through a cheap [`QueueHandle`], found or created in the
//! [`QueueRegistry`].
//!
//! The actor alone owns the ready messages, the consumers, their prefetch
//! credit and their unacknowledged deliveries, so none of that needs a lock.
//! Persistent messages are written to the [`Store`] before they count as
//! accepted, and deleted when acknowledged.

mod actor;
mod ready;

use crate::config::QueuesConfig;
use crate::session::outbox::Outbox;
use crate::stats::Stats;
use crate::store::commit::Committer;
use crate::store::{Store, StoreError};
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use stompede_plugin::Message;
use tokio::sync::mpsc;

/// Commands waiting for one queue actor. A full channel makes publishers
/// wait: backpressure, not loss.
const QUEUE_COMMAND_CAPACITY: usize = 4096;

/// Why a publish to a queue was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum PublishError {
    /// The queue is at its length or byte limit and the policy is `reject`.
    #[error("queue {0} is full")]
    Full(String),
    /// The message could not be stored.
    #[error("message not stored: {0}")]
    Store(StoreError),
    /// The queue actor has stopped (broker shutting down).
    #[error("queue {0} is unavailable")]
    Gone(String),
}

/// What the admin API shows of one queue.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct QueueInfo {
    /// The destination.
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: usize,
    /// Body bytes of the ready messages.
    pub ready_bytes: u64,
    /// Messages delivered and not yet acknowledged.
    pub unacked: usize,
    /// Consumers subscribed now.
    pub consumers: usize,
}

/// A queue's depth as its actor last published it: written by the actor
/// once per turn (relaxed stores on a line only it writes), read by metric
/// scrapes without asking the actor.
#[derive(Debug, Default)]
pub(crate) struct QueueGauges {
    ready: AtomicU64,
    ready_bytes: AtomicU64,
    unacked: AtomicU64,
    consumers: AtomicU64,
}

impl QueueGauges {
    /// Publishes the actor's current numbers.
    fn set(&self, ready: usize, ready_bytes: u64, unacked: usize, consumers: usize) {
        self.ready.store(ready as u64, Ordering::Relaxed);
        self.ready_bytes.store(ready_bytes, Ordering::Relaxed);
        self.unacked.store(unacked as u64, Ordering::Relaxed);
        self.consumers.store(consumers as u64, Ordering::Relaxed);
    }
}

/// One queue in [`QueueDepths`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueDepth {
    /// The destination.
    pub name: String,
    /// Messages waiting for a consumer.
    pub ready: u64,
    /// Messages delivered and not yet acknowledged.
    pub unacked: u64,
}

/// Queue depths for the metrics: the deepest queues and totals over all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct QueueDepths {
    /// The deepest queues (most messages held, ready + unacked; ties by
    /// ready, then name), deepest first; at most the number asked for.
    pub top: Vec<QueueDepth>,
    /// Ready messages over every queue.
    pub ready: u64,
    /// Ready message body bytes over every queue.
    pub ready_bytes: u64,
    /// Unacknowledged deliveries over every queue.
    pub unacked: u64,
    /// Consumers over every queue.
    pub consumers: u64,
}

/// A consumer as the session registers it.
#[derive(Debug)]
pub(crate) struct ConsumerSpec {
    /// Unique id (broker-wide).
    pub id: u64,
    /// The SUBSCRIBE id, echoed in MESSAGE frames.
    pub subscription: ByteString,
    /// Where deliveries go.
    pub outbox: Arc<Outbox>,
    /// Maximum unacknowledged deliveries.
    pub prefetch: u32,
}

/// Messages to a queue actor.
#[derive(Debug)]
// The cluster's commands are only sent by the Kafka bridge.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(crate) enum QueueCommand {
    /// Enqueue a message and say how it went.
    Publish {
        message: Arc<Message>,
        reply: PublishReply,
    },
    /// A new consumer.
    Subscribe(ConsumerSpec),
    /// A consumer left; its unacknowledged deliveries are redelivered.
    Unsubscribe { consumer: u64 },
    /// Deliveries processed.
    Ack { consumer: u64, tags: Vec<u64> },
    /// Deliveries refused: redeliver them, or dead-letter them when
    /// `requeue` is false.
    Nack {
        consumer: u64,
        tags: Vec<u64>,
        requeue: bool,
    },
    /// Delete the queue and everything stored for it (a durable
    /// subscription was removed).
    Delete,
    /// Report depth and consumers.
    Info(tokio::sync::oneshot::Sender<QueueInfo>),
    /// Drop every ready (not yet delivered) message; report how many.
    Purge(tokio::sync::oneshot::Sender<usize>),
    /// A message from the cluster (read from a Kafka partition this node
    /// owns). Not stored locally: Kafka keeps it until it is settled.
    FromCluster {
        message: Arc<Message>,
        origin: Box<dyn Origin>,
        /// Whether it may have been delivered before (by a node that owned
        /// the partition before this one).
        redelivered: bool,
    },
    /// Reader `source` no longer owns these Kafka partitions (`None`: any
    /// more): drop the ready messages it handed over from them, unsettled
    /// (their new owner delivers them).
    Revoke {
        source: u64,
        partitions: Option<Arc<std::collections::HashSet<u32>>>,
    },
}

/// Where a message the cluster handed to this node came from (a Kafka
/// partition and offset). The queue tells it when the message is done with
/// — acknowledged, expired, dead-lettered, dropped or purged — so the
/// offset can be committed.
pub(crate) trait Origin: Send + Sync + std::fmt::Debug {
    /// Which reader of the cluster handed it over (a Kafka consumer).
    fn source(&self) -> u64;
    /// The Kafka partition the message came from.
    fn partition(&self) -> u32;
    /// The message is done with.
    fn settled(&self);
}

/// Told when a queue gains its first consumer on this node or loses its
/// last one: in a cluster, the node joins or leaves the queue's Kafka
/// consumer group, so only nodes with consumers take the queue's messages.
pub(crate) trait ConsumerWatch: Send + Sync {
    /// `queue` has consumers here now (`true`) or none any more.
    fn consumers_present(&self, queue: &ByteString, present: bool);
}

/// Where a queue actor reports the fate of a published message.
#[derive(Debug)]
pub(crate) enum PublishReply {
    /// The publisher asked for a receipt: the RECEIPT (or, on refusal, an
    /// ERROR carrying its id) goes to its outbox; for a persistent message,
    /// only once the message is durable.
    Receipt {
        outbox: Arc<Outbox>,
        receipt_id: ByteString,
    },
    /// Only a refusal is reported, as an ERROR in the publisher's outbox.
    OnError(Arc<Outbox>),
    /// Nobody to tell (dead letters, topic copies for durable
    /// subscriptions); a refusal is logged and counted.
    Nobody,
}

/// A cheap handle to a queue actor.
#[derive(Debug, Clone)]
pub(crate) struct QueueHandle {
    name: ByteString,
    commands: mpsc::Sender<QueueCommand>,
    gauges: Arc<QueueGauges>,
}

impl QueueHandle {
    /// Sends a command; waits while the actor's channel is full.
    pub(crate) async fn send(&self, command: QueueCommand) -> Result<(), PublishError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| PublishError::Gone(self.name.to_string()))
    }

    /// Sends a command without waiting (from places that cannot await).
    pub(crate) fn send_now(&self, command: QueueCommand) {
        if let Err(mpsc::error::TrySendError::Full(command)) = self.commands.try_send(command) {
            let commands = self.commands.clone();
            tokio::spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }

    /// Publishes without waiting for the actor; a refusal is sent to the
    /// publisher's outbox as an ERROR.
    pub(crate) async fn publish(
        &self,
        message: Arc<Message>,
        publisher: Arc<Outbox>,
    ) -> Result<(), PublishError> {
        self.send(QueueCommand::Publish {
            message,
            reply: PublishReply::OnError(publisher),
        })
        .await
    }

    /// Publishes; the RECEIPT `receipt_id` reaches the publisher's outbox
    /// once the message is accepted (and durable, if persistent).
    pub(crate) async fn publish_with_receipt(
        &self,
        message: Arc<Message>,
        outbox: Arc<Outbox>,
        receipt_id: ByteString,
    ) -> Result<(), PublishError> {
        self.send(QueueCommand::Publish {
            message,
            reply: PublishReply::Receipt { outbox, receipt_id },
        })
        .await
    }
}

/// Everything queue actors share.
pub(crate) struct QueueRegistry {
    // std Mutex: only held to look up or create a handle.
    queues: Mutex<HashMap<ByteString, QueueHandle>>,
    config: QueuesConfig,
    stats: Arc<Stats>,
    store: Arc<dyn Store>,
    committer: Committer,
    /// Handed to actors so they can dead-letter into other queues without
    /// keeping the registry alive.
    myself: Weak<QueueRegistry>,
    /// The cluster's interest in which queues have consumers here.
    watch: std::sync::OnceLock<Arc<dyn ConsumerWatch>>,
}

impl std::fmt::Debug for QueueRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueRegistry").finish_non_exhaustive()
    }
}

impl QueueRegistry {
    pub(crate) fn new(
        config: QueuesConfig,
        stats: Arc<Stats>,
        store: Arc<dyn Store>,
        committer: Committer,
    ) -> Arc<QueueRegistry> {
        Arc::new_cyclic(|myself| QueueRegistry {
            queues: Mutex::new(HashMap::new()),
            config,
            stats,
            store,
            committer,
            myself: myself.clone(),
            watch: std::sync::OnceLock::new(),
        })
    }

    /// The actor for queue `name`, started on first use.
    pub(crate) fn queue(&self, name: &ByteString) -> QueueHandle {
        let mut queues = crate::session::outbox::lock(&self.queues);
        queues
            .entry(name.clone())
            .or_insert_with(|| self.spawn(name.clone(), Vec::new()))
            .clone()
    }

    /// Depth and consumers of every queue (each actor answers in turn).
    pub(crate) async fn info(&self) -> Vec<QueueInfo> {
        let handles: Vec<QueueHandle> = crate::session::outbox::lock(&self.queues)
            .values()
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if handle.send(QueueCommand::Info(tx)).await.is_ok() {
                if let Ok(info) = rx.await {
                    out.push(info);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Queue depths as the actors last published them, without asking
    /// them: the `top` deepest queues and totals over all of them.
    pub(crate) fn depths(&self, top: usize) -> QueueDepths {
        let mut out = QueueDepths::default();
        let mut all: Vec<(u64, u64, ByteString)> = {
            let queues = crate::session::outbox::lock(&self.queues);
            let mut all = Vec::with_capacity(queues.len());
            for handle in queues.values() {
                let g = &handle.gauges;
                let ready = g.ready.load(Ordering::Relaxed);
                let unacked = g.unacked.load(Ordering::Relaxed);
                out.ready += ready;
                out.unacked += unacked;
                out.ready_bytes += g.ready_bytes.load(Ordering::Relaxed);
                out.consumers += g.consumers.load(Ordering::Relaxed);
                all.push((ready, unacked, handle.name.clone()));
            }
            all
        };
        // Deepest = most messages held (ready + unacked), then most ready,
        // then by name so that ties are stable between scrapes.
        let deepest_first = |a: &(u64, u64, ByteString), b: &(u64, u64, ByteString)| {
            (b.0 + b.1)
                .cmp(&(a.0 + a.1))
                .then(b.0.cmp(&a.0))
                .then_with(|| a.2.cmp(&b.2))
        };
        if all.len() > top && top > 0 {
            all.select_nth_unstable_by(top - 1, deepest_first);
        }
        all.truncate(top);
        all.sort_unstable_by(deepest_first);
        out.top = all
            .into_iter()
            .map(|(ready, unacked, name)| QueueDepth {
                name: name.to_string(),
                ready,
                unacked,
            })
            .collect();
        out
    }

    /// The store the queues write to.
    pub(crate) fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// The durations of the store syncs so far.
    pub(crate) fn fsync_latency(&self) -> crate::stats::HistogramSnapshot {
        self.committer.fsync_latency().snapshot()
    }

    /// Purges queue `name`'s ready messages; `None` if there is no such queue.
    pub(crate) async fn purge(&self, name: &str) -> Option<usize> {
        let handle = crate::session::outbox::lock(&self.queues)
            .get(name)
            .cloned()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        handle.send(QueueCommand::Purge(tx)).await.ok()?;
        rx.await.ok()
    }

    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    /// Tells `watch` whenever a `/queue/` or a durable subscription's queue
    /// gains its first consumer here or loses its last one (set once, by
    /// the cluster bridge).
    pub(crate) fn set_consumer_watch(&self, watch: Arc<dyn ConsumerWatch>) {
        let _ = self.watch.set(watch);
    }

    /// Passes a change of consumer presence to the watch, if any.
    pub(super) fn consumers_present(&self, queue: &ByteString, present: bool) {
        if let Some(watch) = self.watch.get() {
            if queue.starts_with("/queue/") || queue.starts_with(super::durable::QUEUE_PREFIX) {
                watch.consumers_present(queue, present);
            }
        }
    }

    /// Whether queue `name` has an actor.
    pub(crate) fn contains(&self, name: &str) -> bool {
        crate::session::outbox::lock(&self.queues).contains_key(name)
    }

    /// How many queues have an actor.
    pub(crate) fn len(&self) -> usize {
        crate::session::outbox::lock(&self.queues).len()
    }

    /// Forgets a deleted queue's handle.
    pub(crate) fn remove(&self, name: &str) -> Option<QueueHandle> {
        crate::session::outbox::lock(&self.queues).remove(name)
    }

    /// Rebuilds every stored queue. Call before any listener opens.
    pub(crate) fn recover(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        for stored in self.store.load()? {
            let mut messages = Vec::with_capacity(stored.messages.len());
            for (seq, record) in &stored.messages {
                match crate::store::decode_message(record) {
                    Ok(m) => messages.push((*seq, m)),
                    Err(e) => {
                        tracing::error!(queue = %stored.name, seq, error = %e, "skipping an unreadable stored message")
                    }
                }
            }
            total += messages.len();
            let name = ByteString::from(stored.name);
            let handle = self.spawn(name.clone(), messages);
            crate::session::outbox::lock(&self.queues).insert(name, handle);
        }
        Ok(total)
    }

    fn spawn(&self, name: ByteString, recovered: Vec<(u64, Message)>) -> QueueHandle {
        let (tx, rx) = mpsc::channel(QUEUE_COMMAND_CAPACITY);
        let gauges = Arc::new(QueueGauges::default());
        let mut settings = self.config.settings_for(&name);
        if name.starts_with(super::durable::QUEUE_PREFIX) {
            // A durable subscription keeps everything for its subscriber.
            settings.durable = true;
        }
        let actor = actor::QueueActor::new(
            name.clone(),
            settings,
            actor::Shared {
                stats: Arc::clone(&self.stats),
                store: Arc::clone(&self.store),
                committer: self.committer.clone(),
                registry: self.myself.clone(),
            },
            Arc::clone(&gauges),
            recovered,
        );
        tokio::spawn(actor.run(rx));
        QueueHandle {
            name,
            commands: tx,
            gauges,
        }
    }
}
