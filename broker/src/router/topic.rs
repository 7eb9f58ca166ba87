//! The topic table: exact subscriptions, wildcard subscriptions and a match
//! cache. Read-mostly: publishers take a read lock and clone one `Arc` of
//! the matching subscriber list, then fan out without any lock held.

use super::wildcard::Pattern;
use crate::session::outbox::{Delivery, Outbound, Outbox, PushOutcome};
use crate::stats::{DestinationKind, Stats};
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use stompede_plugin::Message;

/// Cached match lists beyond this many destinations are forgotten at once
/// (bounded memory; rebuilt lazily).
const MATCH_CACHE_CAPACITY: usize = 65_536;

/// One subscription to a topic-like destination.
#[derive(Debug)]
pub(crate) struct TopicSubscriber {
    /// The subscribing session.
    pub session_id: u64,
    /// The SUBSCRIBE id.
    pub subscription: ByteString,
    /// Where deliveries go.
    pub outbox: Arc<Outbox>,
}

type SubscriberList = Arc<[Arc<TopicSubscriber>]>;

#[derive(Debug, Default)]
struct Inner {
    exact: HashMap<ByteString, Vec<Arc<TopicSubscriber>>>,
    patterns: Vec<(Pattern, ByteString, Arc<TopicSubscriber>)>,
    cache: HashMap<ByteString, SubscriberList>,
}

/// What the admin API shows of one topic-like destination.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct TopicInfo {
    /// The destination, or the wildcard pattern subscribed to.
    pub name: String,
    /// Subscriptions to exactly this name (for a pattern: to the pattern).
    pub subscribers: usize,
    /// Whether `name` is a wildcard pattern.
    pub pattern: bool,
}

/// Told when the table starts or stops needing the messages of a key: an
/// exact key's first subscriber came or its last one left; a pattern
/// subscription was added or removed. In a cluster, the node reads only
/// the Kafka partitions its subscribers need. Called with the table
/// locked: must be quick and must not block.
pub(crate) trait TopicInterest: Send + Sync {
    /// `key` (a pattern if `pattern`) is needed (`added`) or no longer.
    fn changed(&self, key: &str, pattern: bool, added: bool);
}

/// Topic, user and reply destinations and their subscribers.
pub(crate) struct TopicTable {
    // std RwLock: never held across an `.await`.
    inner: RwLock<Inner>,
    stats: Arc<Stats>,
    interest: std::sync::OnceLock<Arc<dyn TopicInterest>>,
}

impl std::fmt::Debug for TopicTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicTable").finish_non_exhaustive()
    }
}

impl TopicTable {
    /// An empty table counting publishes in `stats`.
    pub(crate) fn new(stats: Arc<Stats>) -> TopicTable {
        TopicTable {
            inner: RwLock::default(),
            stats,
            interest: std::sync::OnceLock::new(),
        }
    }

    /// Tells `interest` from now on which keys have subscribers (set once,
    /// by the cluster bridge, before any session starts).
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn set_interest(&self, interest: Arc<dyn TopicInterest>) {
        let _ = self.interest.set(interest);
    }

    fn tell(&self, key: &str, pattern: bool, added: bool) {
        if let Some(interest) = self.interest.get() {
            interest.changed(key, pattern, added);
        }
    }

    /// Every subscribed destination and pattern with its subscription
    /// count, sorted by name.
    pub(crate) fn destinations(&self) -> Vec<TopicInfo> {
        let inner = read(&self.inner);
        let mut out: Vec<TopicInfo> = inner
            .exact
            .iter()
            .map(|(name, list)| TopicInfo {
                name: name.to_string(),
                subscribers: list.len(),
                pattern: false,
            })
            .collect();
        let mut patterns: HashMap<&str, usize> = HashMap::new();
        for (_, key, _) in &inner.patterns {
            *patterns.entry(&**key).or_default() += 1;
        }
        out.extend(patterns.into_iter().map(|(name, subscribers)| TopicInfo {
            name: name.to_owned(),
            subscribers,
            pattern: true,
        }));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Adds a subscription to `key` (an exact destination or a pattern).
    pub(crate) fn subscribe(&self, key: ByteString, subscriber: Arc<TopicSubscriber>) {
        let mut inner = write(&self.inner);
        match Pattern::parse(&key) {
            Some(pattern) => {
                self.tell(&key, true, true);
                inner.patterns.push((pattern, key, subscriber));
                inner.cache.clear();
            }
            None => {
                inner.cache.remove(&key);
                let list = inner.exact.entry(key.clone()).or_default();
                if list.is_empty() {
                    self.tell(&key, false, true);
                }
                list.push(subscriber);
            }
        }
    }

    /// Removes the subscription `subscription` of `session_id` to `key`.
    pub(crate) fn unsubscribe(&self, key: &str, session_id: u64, subscription: &str) {
        let same =
            |s: &Arc<TopicSubscriber>| s.session_id == session_id && s.subscription == subscription;
        let mut inner = write(&self.inner);
        if let Some(list) = inner.exact.get_mut(key) {
            list.retain(|s| !same(s));
            if list.is_empty() {
                inner.exact.remove(key);
                self.tell(key, false, false);
            }
            inner.cache.remove(key);
        } else {
            let before = inner.patterns.len();
            inner.patterns.retain(|(_, k, s)| !(k == key && same(s)));
            for _ in inner.patterns.len()..before {
                self.tell(key, true, false);
            }
            if inner.patterns.len() != before {
                inner.cache.clear();
            }
        }
    }

    /// Delivers `message` to every subscriber of `key`. Returns how many
    /// deliveries were queued.
    pub(crate) fn publish(&self, key: &ByteString, message: &Arc<Message>) -> usize {
        self.fan_out(key, message, false)
    }

    /// Like [`TopicTable::publish`], but the slow-consumer policy may not
    /// drop these deliveries (a plugin's replies, which it bounds itself).
    pub(crate) fn publish_reliably(&self, key: &ByteString, message: &Arc<Message>) -> usize {
        self.fan_out(key, message, true)
    }

    fn fan_out(&self, key: &ByteString, message: &Arc<Message>, reliable: bool) -> usize {
        self.stats.published(DestinationKind::Topic);
        let subscribers = self.matching(key);
        let mut delivered = 0;
        for subscriber in subscribers.iter() {
            let delivery = Delivery {
                subscription: subscriber.subscription.clone(),
                message: Arc::clone(message),
                queue: None,
                redelivered: false,
            };
            let outcome = match reliable {
                false => subscriber.outbox.push_topic(delivery),
                true => subscriber.outbox.push(Outbound::Reliable(delivery)),
            };
            if outcome != PushOutcome::Closed {
                delivered += 1;
            }
        }
        delivered
    }

    /// The subscribers that receive messages sent to `key`.
    fn matching(&self, key: &ByteString) -> SubscriberList {
        {
            let inner = read(&self.inner);
            if let Some(hit) = inner.cache.get(key) {
                return Arc::clone(hit);
            }
        }
        let mut inner = write(&self.inner);
        let mut list: Vec<Arc<TopicSubscriber>> = inner.exact.get(key).cloned().unwrap_or_default();
        list.extend(
            inner
                .patterns
                .iter()
                .filter(|(p, _, _)| p.matches(key))
                .map(|(_, _, s)| Arc::clone(s)),
        );
        let list: SubscriberList = list.into();
        if inner.cache.len() >= MATCH_CACHE_CAPACITY {
            inner.cache.clear();
        }
        inner.cache.insert(key.clone(), Arc::clone(&list));
        list
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
