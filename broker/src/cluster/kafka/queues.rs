//! The queue stream: `/queue/` messages live in the partitions of
//! `{prefix}.queues`. Each queue is a Kafka consumer group
//! (`{prefix}.queues./queue/name`) that a node joins while the queue has
//! consumers on it, so only nodes that can deliver a queue's messages take
//! its partitions. A node hands each record of its partitions to its local
//! queue and commits a partition's offset only up to the first record not
//! yet settled (acknowledged, expired, dead-lettered), so a record whose
//! node dies before the ACK is read again by the partition's next owner,
//! flagged `redelivered`.
//!
//! The price of a group per queue: each group reads the whole topic and
//! skips other queues' records, so a node reads the queue traffic once per
//! queue it has consumers of.

use super::client::{self, NodeContext};
use super::KafkaBridge;
use crate::broker::Shared;
use crate::router::queue::{ConsumerWatch, Origin, QueueCommand};
use crate::router::wildcard::Pattern;
use crate::store::decode_message;
use bytestring::ByteString;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Records a node holds unsettled before it stops fetching more.
const MAX_UNSETTLED: usize = 10_000;
/// How often settled offsets are committed.
const COMMIT_INTERVAL: Duration = Duration::from_millis(200);
/// How long a rebalance may wait for Kafka's watermarks or a commit.
const REBALANCE_TIMEOUT: Duration = Duration::from_secs(5);

/// One owned partition's unsettled records.
#[derive(Debug, Default)]
struct PartitionState {
    /// Which assignment this is: settlements of an older one are ignored.
    generation: u64,
    /// Offsets handed to queues and not settled yet.
    unsettled: BTreeSet<i64>,
    /// One past the last offset read.
    next: i64,
    /// The offset last committed.
    committed: i64,
    /// Records below this offset may have been delivered by the
    /// partition's previous owner: they arrive flagged `redelivered`.
    redelivered_below: i64,
}

impl PartitionState {
    /// The offset to commit: the first record not settled yet.
    fn commit_point(&self) -> i64 {
        self.unsettled.first().copied().unwrap_or(self.next)
    }
}

/// Settlement bookkeeping for the partitions this node owns.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Which feed this is (the queue tells the sources apart on revoke).
    source: u64,
    partitions: Mutex<HashMap<u32, PartitionState>>,
    next_generation: std::sync::atomic::AtomicU64,
    unsettled: std::sync::atomic::AtomicUsize,
    /// Woken when records are settled (the reader may fetch again).
    settled: Notify,
}

impl Tracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, PartitionState>> {
        crate::session::outbox::lock(&self.partitions)
    }

    fn assign(&self, partition: u32, committed: i64, high_watermark: i64) {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(
            partition,
            PartitionState {
                generation,
                unsettled: BTreeSet::new(),
                next: committed,
                committed,
                redelivered_below: high_watermark,
            },
        );
    }

    /// Forgets `partition`; whether it was this node's.
    fn revoke(&self, partition: u32) -> bool {
        let Some(state) = self.lock().remove(&partition) else {
            return false;
        };
        self.unsettled
            .fetch_sub(state.unsettled.len(), Ordering::Relaxed);
        self.settled.notify_one();
        true
    }

    /// Takes a record read at `offset`; `None` if the partition is not
    /// (or no longer) this node's. Returns the record's ticket and whether
    /// it may have been delivered before.
    fn take(self: &Arc<Self>, partition: u32, offset: i64) -> Option<(Ticket, bool)> {
        let mut partitions = self.lock();
        let state = partitions.get_mut(&partition)?;
        state.unsettled.insert(offset);
        state.next = state.next.max(offset + 1);
        self.unsettled.fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket {
            tracker: Arc::clone(self),
            source: self.source,
            partition,
            offset,
            generation: state.generation,
        };
        Some((ticket, offset < state.redelivered_below))
    }

    fn settle(&self, partition: u32, offset: i64, generation: u64) {
        let mut partitions = self.lock();
        if let Some(state) = partitions.get_mut(&partition) {
            if state.generation == generation && state.unsettled.remove(&offset) {
                self.unsettled.fetch_sub(1, Ordering::Relaxed);
                self.settled.notify_one();
            }
        }
    }

    /// The offsets worth committing now (those that moved), marked as
    /// committed.
    fn to_commit(&self, topic: &str, only: Option<&HashSet<u32>>) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (partition, state) in self.lock().iter_mut() {
            if only.is_some_and(|only| !only.contains(partition)) {
                continue;
            }
            let point = state.commit_point();
            if point > state.committed
                && list
                    .add_partition_offset(topic, *partition as i32, Offset::Offset(point))
                    .is_ok()
            {
                state.committed = point;
            }
        }
        list
    }

    fn unsettled(&self) -> usize {
        self.unsettled.load(Ordering::Relaxed)
    }
}

/// A record in a local queue: settles its offset when the queue is done
/// with it.
#[derive(Debug)]
struct Ticket {
    tracker: Arc<Tracker>,
    source: u64,
    partition: u32,
    offset: i64,
    generation: u64,
}

impl Origin for Ticket {
    fn source(&self) -> u64 {
        self.source
    }

    fn partition(&self) -> u32 {
        self.partition
    }

    fn settled(&self) {
        self.tracker
            .settle(self.partition, self.offset, self.generation);
    }
}

/// The group consumer's context: rebalances update the tracker and the
/// local queues.
struct GroupContext {
    inner: NodeContext,
    health: Arc<super::health::Health>,
    tracker: Arc<Tracker>,
    topic: String,
    shared: Weak<Shared>,
    rejoin: Arc<RejoinWatch>,
    queue: ByteString,
}

/// Notices a rebalance that hands a node back exactly what it gave up. A
/// coordinator that lost track of a dead member does that (Tansu 0.6 keeps
/// a dead member's assignment and generation): the node then rejoins as a
/// new member, which makes the coordinator assign the partitions afresh.
#[derive(Default)]
struct RejoinWatch {
    revoked: Mutex<Vec<i32>>,
    last_forced: Mutex<Option<std::time::Instant>>,
    wanted: std::sync::atomic::AtomicBool,
}

/// At most one forced rejoin per this period (a legitimate rebalance may
/// also leave a node's share unchanged).
const REJOIN_COOLDOWN: Duration = Duration::from_secs(30);

/// The partition numbers of `list`, sorted.
fn sorted_partitions(list: &TopicPartitionList) -> Vec<i32> {
    let mut partitions: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
    partitions.sort_unstable();
    partitions
}

impl RejoinWatch {
    fn revoked(&self, partitions: &TopicPartitionList) {
        *crate::session::outbox::lock(&self.revoked) = sorted_partitions(partitions);
    }

    fn assigned(&self, partitions: &TopicPartitionList) {
        let list = sorted_partitions(partitions);
        let revoked = std::mem::take(&mut *crate::session::outbox::lock(&self.revoked));
        if list.is_empty() || list != revoked {
            return;
        }
        let mut last = crate::session::outbox::lock(&self.last_forced);
        if last.is_some_and(|t| t.elapsed() < REJOIN_COOLDOWN) {
            return;
        }
        *last = Some(std::time::Instant::now());
        tracing::warn!(partitions = ?list, "the queue group handed back the same partitions after a rebalance: rejoining as a new member");
        self.wanted.store(true, Ordering::Relaxed);
    }

    fn take_wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::Relaxed)
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.inner.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        self.rejoin.revoked(list);
        let partitions: HashSet<u32> = list
            .elements()
            .iter()
            .map(|e| e.partition() as u32)
            .collect();
        let settled = self.tracker.to_commit(&self.topic, Some(&partitions));
        if settled.count() > 0 {
            if let Err(e) = consumer.commit(&settled, CommitMode::Sync) {
                tracing::warn!(error = %e, "commit before giving up queue partitions failed: they will be redelivered");
            }
        }
        let given_up = partitions
            .iter()
            .filter(|p| self.tracker.revoke(**p))
            .count();
        self.health
            .queue_partitions
            .fetch_sub(given_up as u64, Ordering::Relaxed);
        tracing::info!(queue = %self.queue, partitions = ?partitions, "queue partitions moved to another node");
        if let Some(shared) = self.shared.upgrade() {
            shared
                .router
                .queue(&self.queue)
                .send_now(QueueCommand::Revoke {
                    source: self.tracker.source,
                    partitions: Some(Arc::new(partitions)),
                });
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else {
            return;
        };
        self.rejoin.assigned(list);
        let committed = consumer
            .committed_offsets((*list).clone(), REBALANCE_TIMEOUT)
            .unwrap_or_else(|_| (*list).clone());
        let mut taken = Vec::new();
        for element in committed.elements() {
            let partition = element.partition();
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, partition, REBALANCE_TIMEOUT)
                .unwrap_or((0, 0));
            let start = match element.offset() {
                Offset::Offset(n) => n,
                // Nothing committed yet: the group starts at the oldest record.
                _ => low,
            };
            self.tracker.assign(partition as u32, start, high);
            taken.push(partition);
        }
        self.health
            .queue_partitions
            .fetch_add(taken.len() as u64, Ordering::Relaxed);
        tracing::info!(queue = %self.queue, partitions = ?taken, "queue partitions taken");
    }
}

/// Watches which queues have consumers on this node and runs a group
/// member for each of them.
pub(super) fn start(bridge: &Arc<KafkaBridge>, shared: Weak<Shared>) -> Result<(), String> {
    let Some(strong) = shared.upgrade() else {
        return Ok(());
    };
    let groups = Arc::new(QueueGroups {
        bridge: Arc::clone(bridge),
        shared,
        stop: strong.shutdown.clone(),
        feeds: Mutex::default(),
        next_source: std::sync::atomic::AtomicU64::new(1),
    });
    strong.router.queues.set_consumer_watch(groups);
    strong.router.durable.set_fed_by_cluster();
    Ok(())
}

/// The queue groups this node is a member of, by queue.
struct QueueGroups {
    bridge: Arc<KafkaBridge>,
    shared: Weak<Shared>,
    stop: CancellationToken,
    feeds: Mutex<HashMap<ByteString, CancellationToken>>,
    next_source: std::sync::atomic::AtomicU64,
}

impl QueueGroups {
    /// What the group of local queue `queue` reads: a `/queue/`, or the
    /// queue of a durable subscription bound on this node.
    fn selection(&self, queue: &ByteString) -> Option<Selection> {
        if queue.starts_with("/queue/") {
            return Some(Selection::Queue);
        }
        let topic = self.shared.upgrade()?.router.durable.topic_of(queue)?;
        Some(Selection::Durable(Pattern::parse(&topic), topic))
    }
}

impl ConsumerWatch for QueueGroups {
    fn consumers_present(&self, queue: &ByteString, present: bool) {
        let mut feeds = crate::session::outbox::lock(&self.feeds);
        match present {
            true if !feeds.contains_key(queue) => {
                let Some(selection) = self.selection(queue) else {
                    return;
                };
                let stop = self.stop.child_token();
                let source = self.next_source.fetch_add(1, Ordering::Relaxed);
                let feed = QueueFeed {
                    bridge: Arc::clone(&self.bridge),
                    shared: self.shared.clone(),
                    queue: queue.clone(),
                    selection,
                    tracker: Arc::new(Tracker {
                        source,
                        ..Tracker::default()
                    }),
                    rejoin: Arc::new(RejoinWatch::default()),
                };
                match feed.join() {
                    Ok(consumer) => {
                        tokio::spawn(feed.run(consumer, stop.clone()));
                        feeds.insert(queue.clone(), stop);
                    }
                    Err(e) => {
                        tracing::error!(queue = %queue, error = %e, "cannot join the queue's group")
                    }
                }
            }
            false => {
                if let Some(stop) = feeds.remove(queue) {
                    stop.cancel();
                }
            }
            true => {}
        }
    }
}

/// This node's member of one queue's group.
struct QueueFeed {
    bridge: Arc<KafkaBridge>,
    shared: Weak<Shared>,
    /// The local queue it feeds.
    queue: ByteString,
    /// Which records of which Kafka topic.
    selection: Selection,
    tracker: Arc<Tracker>,
    rejoin: Arc<RejoinWatch>,
}

/// What a feed reads.
enum Selection {
    /// A queue: its records of `{prefix}.queues` (key = the queue).
    Queue,
    /// A durable topic subscription: the records of `{prefix}.topics`
    /// whose destination it subscribed to. Its group starts at the end
    /// the first time, and from its committed offsets after that, on
    /// whichever node its subscriber is connected to.
    Durable(Option<Pattern>, ByteString),
}

impl QueueFeed {
    fn kafka_topic(&self) -> &str {
        match self.selection {
            Selection::Queue => &self.bridge.names.queues,
            Selection::Durable(..) => &self.bridge.names.topics,
        }
    }

    fn group(&self) -> String {
        match self.selection {
            Selection::Queue => format!("{}.{}", self.bridge.names.queues, self.queue),
            Selection::Durable(..) => self.bridge.names.durable_group(&self.queue),
        }
    }

    /// Whether a record with this key is for this feed.
    fn wants(&self, key: &str) -> bool {
        match &self.selection {
            Selection::Queue => key == &*self.queue,
            Selection::Durable(pattern, topic) => match pattern {
                Some(pattern) => pattern.matches(key),
                None => key == &**topic,
            },
        }
    }
}

impl QueueFeed {
    /// A consumer in the queue's group (a new member each time).
    fn join(&self) -> Result<StreamConsumer<GroupContext>, String> {
        let bridge = &self.bridge;
        let topic = self.kafka_topic().to_owned();
        let context = GroupContext {
            inner: NodeContext::new(Arc::clone(&bridge.health)),
            health: Arc::clone(&bridge.health),
            tracker: Arc::clone(&self.tracker),
            topic: topic.clone(),
            shared: self.shared.clone(),
            rejoin: Arc::clone(&self.rejoin),
            queue: self.queue.clone(),
        };
        let start = match self.selection {
            // A queue's records wait in Kafka for the first consumer.
            Selection::Queue => "earliest",
            // A new durable subscription gets what is published from now.
            Selection::Durable(..) => "latest",
        };
        let mut config = client::consumer(&bridge.config, &bridge.node_id, "queues", &self.group());
        config
            .set("auto.offset.reset", start)
            // A node that dies is noticed within this time; its partitions
            // (and unacknowledged records) move to the others.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            .set("partition.assignment.strategy", "roundrobin");
        let consumer: StreamConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(|e| format!("cannot create the queue consumer: {e}"))?;
        consumer
            .subscribe(&[&topic])
            .map_err(|e| format!("cannot join the queue group: {e}"))?;
        Ok(consumer)
    }

    /// Feeds the queue until `stop`, rejoining when asked to; then leaves
    /// the group and drops what it handed over and was not delivered.
    async fn run(self, mut consumer: StreamConsumer<GroupContext>, stop: CancellationToken) {
        loop {
            self.feed(&consumer, &stop).await;
            commit_settled(&consumer, &self.tracker, self.kafka_topic());
            drop(consumer);
            if stop.is_cancelled() {
                break;
            }
            consumer = loop {
                match self.join() {
                    Ok(consumer) => break consumer,
                    Err(e) => {
                        tracing::warn!(queue = %self.queue, error = %e, "cannot rejoin the queue group");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            };
        }
        if let Some(shared) = self.shared.upgrade() {
            shared
                .router
                .queue(&self.queue)
                .send_now(QueueCommand::Revoke {
                    source: self.tracker.source,
                    partitions: None,
                });
        }
    }

    /// Hands records to the queues until the broker stops or a rejoin is
    /// wanted.
    async fn feed(&self, consumer: &StreamConsumer<GroupContext>, stop: &CancellationToken) {
        let (tracker, health) = (&self.tracker, &self.bridge.health);
        let mut commit = tokio::time::interval(COMMIT_INTERVAL);
        let mut paused = false;
        loop {
            if self.rejoin.take_wanted() {
                return;
            }
            let record = tokio::select! {
                () = stop.cancelled() => return,
                _ = commit.tick() => {
                    commit_settled(consumer, tracker, self.kafka_topic());
                    health.queue_lag.store(tracker.unsettled() as u64, Ordering::Relaxed);
                    paused = throttle(consumer, tracker, paused);
                    continue;
                }
                () = tracker.settled.notified(), if paused => {
                    paused = throttle(consumer, tracker, paused);
                    continue;
                }
                record = consumer.recv() => record,
            };
            let record = match record {
                Ok(record) => record,
                Err(e) => {
                    tracing::debug!(error = %e, "queue stream");
                    // librdkafka retries by itself; do not spin on a burst of errors.
                    tokio::time::sleep(super::ERROR_PAUSE).await;
                    continue;
                }
            };
            let Some((ticket, redelivered)) =
                tracker.take(record.partition() as u32, record.offset())
            else {
                continue;
            };
            let key = record.key_view::<str>();
            if let Some(Ok(key)) = key {
                if !self.wants(key) {
                    // Another queue's record: not this group's to deliver.
                    ticket.settled();
                    continue;
                }
            }
            let (Some(Ok(_)), Some(payload)) = (key, record.payload()) else {
                tracing::warn!(
                    partition = record.partition(),
                    offset = record.offset(),
                    "queue record without a key or payload: skipped"
                );
                ticket.settled();
                continue;
            };
            let message = match decode_message(payload) {
                Ok(message) => Arc::new(message),
                Err(e) => {
                    tracing::warn!(partition = record.partition(), offset = record.offset(), error = %e, "unreadable queue record: skipped");
                    ticket.settled();
                    continue;
                }
            };
            let Some(shared) = self.shared.upgrade() else {
                return;
            };
            health.records_in.fetch_add(1, Ordering::Relaxed);
            let queue = shared.router.queue(&self.queue);
            let command = QueueCommand::FromCluster {
                message,
                origin: Box::new(ticket),
                redelivered,
            };
            if queue.send(command).await.is_err() {
                tracing::warn!("a queue stopped while the cluster fed it");
            }
            if !paused {
                paused = throttle(consumer, tracker, paused);
            }
        }
    }
}

/// Makes the new durable subscription `queue` start at the topic stream's
/// end as of now: unless its group has offsets already, commits the
/// partitions' high watermarks for it before anyone joins it, so its SUBSCRIBE's RECEIPT promises every message
/// published after it (a group's own start would be "latest" at its first
/// fetch, a moment later).
pub(super) async fn start_durable_from_now(
    bridge: &Arc<KafkaBridge>,
    queue: &str,
) -> Result<(), String> {
    let group = bridge.names.durable_group(queue);
    let topic = bridge.names.topics.clone();
    let partitions = bridge.partitions;
    let consumer: rdkafka::consumer::BaseConsumer<NodeContext> =
        client::consumer(&bridge.config, &bridge.node_id, "durable-start", &group)
            .create_with_context(NodeContext::new(Arc::clone(&bridge.health)))
            .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        // Bound on another node before (this node has not seen it): the
        // group has offsets already, and they are where it resumes.
        let mut all = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            all.add_partition(&topic, partition);
        }
        let committed = consumer
            .committed_offsets(all, REBALANCE_TIMEOUT)
            .map_err(|e| e.to_string())?;
        if committed
            .elements()
            .iter()
            .any(|e| matches!(e.offset(), Offset::Offset(_)))
        {
            return Ok(());
        }
        let mut offsets = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            let (_, high) = consumer
                .fetch_watermarks(&topic, partition, REBALANCE_TIMEOUT)
                .map_err(|e| e.to_string())?;
            offsets
                .add_partition_offset(&topic, partition, Offset::Offset(high))
                .map_err(|e| e.to_string())?;
        }
        consumer
            .commit(&offsets, CommitMode::Sync)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Commits what was settled since the last commit.
fn commit_settled(consumer: &StreamConsumer<GroupContext>, tracker: &Tracker, topic: &str) {
    let settled = tracker.to_commit(topic, None);
    if settled.count() > 0 {
        if let Err(e) = consumer.commit(&settled, CommitMode::Async) {
            tracing::debug!(error = %e, "queue offset commit");
        }
    }
}

/// Stops fetching while too much is unsettled, resumes below half of it.
fn throttle(consumer: &StreamConsumer<GroupContext>, tracker: &Tracker, paused: bool) -> bool {
    let unsettled = tracker.unsettled();
    let want_paused = if paused {
        unsettled > MAX_UNSETTLED / 2
    } else {
        unsettled >= MAX_UNSETTLED
    };
    if want_paused != paused {
        if let Ok(assignment) = consumer.assignment() {
            let result = match want_paused {
                true => consumer.pause(&assignment),
                false => consumer.resume(&assignment),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "cannot pause or resume the queue stream");
                return paused;
            }
        }
    }
    want_paused
}
