//! Which sessions are connected, for the admin API: who they are, what
//! they subscribe to, how busy they are, a way to close one, and the
//! frame-trace rules.
//!
//! A session registers after CONNECT ([`SessionRegistry::insert`]) and gets
//! back its [`Connection`]: the place to count its frames and to ask, per
//! frame, whether it is traced. Trace rules name a user or a peer IP
//! address; the registry sets each matching connection's flag when a rule
//! is added or removed and when a session registers, so the per-frame check
//! is one relaxed load.

use crate::session::outbox::{lock, Outbox};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rates are recomputed when the previous sample is at least this old.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Per-second rates of one connection.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Rates {
    /// Frames read per second.
    pub frames_in: f64,
    /// Frames written per second.
    pub frames_out: f64,
    /// Frame bytes read per second.
    pub bytes_in: f64,
    /// Frame bytes written per second.
    pub bytes_out: f64,
}

/// What the admin API shows of one connection.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConnectionInfo {
    /// The session id.
    pub id: u64,
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The peer address and port, if the transport has one.
    pub peer: Option<String>,
    /// The peer IP address (what trace rules match), if any.
    pub address: Option<String>,
    /// `tcp`, `ws`, `tcp+tls` or `wss` (`tcp` also for in-process
    /// connections).
    pub transport: &'static str,
    /// The negotiated STOMP version.
    pub version: &'static str,
    /// Subscriptions open now.
    pub subscriptions: usize,
    /// Whether its frames are traced now.
    pub traced: bool,
    /// Milliseconds since it registered (after CONNECT).
    pub connected_ms: u64,
    /// Frames read since CONNECT.
    pub frames_in: u64,
    /// Frames written since CONNECT.
    pub frames_out: u64,
    /// Frame bytes read since CONNECT.
    pub bytes_in: u64,
    /// Frame bytes written since CONNECT.
    pub bytes_out: u64,
    /// Per-second rates over the time between the two latest samples (a
    /// sample is taken when the list is asked for, at most once a second;
    /// the first covers the time since CONNECT).
    pub rates: Rates,
}

/// A live session as the session describes it when it registers.
#[derive(Debug)]
pub(crate) struct Entry {
    pub user: Option<String>,
    pub peer: Option<SocketAddr>,
    pub transport: &'static str,
    pub version: &'static str,
    pub subscriptions: AtomicUsize,
    pub outbox: Arc<Outbox>,
}

/// What to trace: every session of a user, or every session from an IP
/// address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceRule {
    /// Sessions authenticated as this user.
    User(String),
    /// Sessions whose peer has this IP address (IPv4-mapped IPv6
    /// addresses count as IPv4).
    Address(IpAddr),
}

impl TraceRule {
    /// A rule for `address`, normalised (`::ffff:1.2.3.4` is `1.2.3.4`).
    pub fn address(address: IpAddr) -> TraceRule {
        TraceRule::Address(address.to_canonical())
    }

    fn matches(&self, entry: &Entry) -> bool {
        match self {
            TraceRule::User(user) => entry.user.as_deref() == Some(user.as_str()),
            TraceRule::Address(ip) => entry.peer.is_some_and(|p| p.ip().to_canonical() == *ip),
        }
    }
}

/// The sample rates are computed from.
#[derive(Debug)]
struct RateSample {
    at: Instant,
    counts: [u64; 4],
    rates: Rates,
}

/// A registered session: its [`Entry`] plus what changes while it lives.
/// Derefs to the entry.
///
/// The counters have one writer, the owning session, so bumping them is a
/// load and a store on a cache line nobody else writes.
#[derive(Debug)]
pub(crate) struct Connection {
    entry: Arc<Entry>,
    traced: AtomicBool,
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    connected_at: Instant,
    // std Mutex: only the admin API touches it.
    sample: Mutex<RateSample>,
}

impl Deref for Connection {
    type Target = Entry;

    fn deref(&self) -> &Entry {
        &self.entry
    }
}

/// Adds `n` to a counter only one thread writes.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl Connection {
    fn new(entry: Arc<Entry>, traced: bool) -> Connection {
        let now = Instant::now();
        Connection {
            entry,
            traced: AtomicBool::new(traced),
            frames_in: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            connected_at: now,
            sample: Mutex::new(RateSample {
                at: now,
                counts: [0; 4],
                rates: Rates::default(),
            }),
        }
    }

    /// Whether the session must log its frames now (checked per frame).
    #[inline]
    pub(crate) fn is_traced(&self) -> bool {
        self.traced.load(Ordering::Relaxed)
    }

    /// The session read a frame of `bytes` bytes. Only the owning session
    /// may call this.
    #[inline]
    pub(crate) fn frame_in(&self, bytes: usize) {
        bump(&self.frames_in, 1);
        bump(&self.bytes_in, bytes as u64);
    }

    /// The session wrote a frame of `bytes` bytes. Only the owning session
    /// may call this.
    #[inline]
    pub(crate) fn frame_out(&self, bytes: usize) {
        bump(&self.frames_out, 1);
        bump(&self.bytes_out, bytes as u64);
    }

    fn info(&self, id: u64, now: Instant) -> ConnectionInfo {
        let counts = [
            self.frames_in.load(Ordering::Relaxed),
            self.frames_out.load(Ordering::Relaxed),
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        ];
        let rates = {
            let mut sample = lock(&self.sample);
            let elapsed = now.saturating_duration_since(sample.at);
            if elapsed >= RATE_WINDOW || sample.at == self.connected_at {
                let secs = elapsed.as_secs_f64().max(1e-3);
                let rate = |i: usize| counts[i].wrapping_sub(sample.counts[i]) as f64 / secs;
                sample.rates = Rates {
                    frames_in: rate(0),
                    frames_out: rate(1),
                    bytes_in: rate(2),
                    bytes_out: rate(3),
                };
                sample.at = now;
                sample.counts = counts;
            }
            sample.rates
        };
        let e = &self.entry;
        ConnectionInfo {
            id,
            user: e.user.clone(),
            peer: e.peer.map(|p| p.to_string()),
            address: e.peer.map(|p| p.ip().to_canonical().to_string()),
            transport: e.transport,
            version: e.version,
            subscriptions: e.subscriptions.load(Ordering::Relaxed),
            traced: self.is_traced(),
            connected_ms: now
                .saturating_duration_since(self.connected_at)
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
            frames_in: counts[0],
            frames_out: counts[1],
            bytes_in: counts[2],
            bytes_out: counts[3],
            rates,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions: BTreeMap<u64, Arc<Connection>>,
    trace: BTreeSet<TraceRule>,
}

impl Inner {
    fn should_trace(&self, entry: &Entry) -> bool {
        self.trace.iter().any(|r| r.matches(entry))
    }
}

/// Every connected session, by id, and the trace rules.
#[derive(Debug, Default)]
pub(crate) struct SessionRegistry {
    // std Mutex: held for a map operation (or one pass over the sessions
    // when trace rules change) only; never on the per-frame path.
    inner: Mutex<Inner>,
}

impl SessionRegistry {
    /// Registers session `id`; the returned [`Connection`] is where the
    /// session counts its frames and checks [`Connection::is_traced`].
    /// Whether it starts traced follows the current rules.
    pub(crate) fn insert(&self, id: u64, entry: Arc<Entry>) -> Arc<Connection> {
        let mut inner = lock(&self.inner);
        let traced = inner.should_trace(&entry);
        let connection = Arc::new(Connection::new(entry, traced));
        inner.sessions.insert(id, Arc::clone(&connection));
        connection
    }

    /// How many sessions are registered.
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).sessions.len()
    }

    /// Forgets session `id`.
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.inner).sessions.remove(&id);
    }

    /// A snapshot of every connection.
    pub(crate) fn list(&self) -> Vec<ConnectionInfo> {
        let connections: Vec<(u64, Arc<Connection>)> = lock(&self.inner)
            .sessions
            .iter()
            .map(|(id, c)| (*id, Arc::clone(c)))
            .collect();
        let now = Instant::now();
        connections.iter().map(|(id, c)| c.info(*id, now)).collect()
    }

    /// Sends connection `id` an ERROR and closes it; false if unknown.
    pub(crate) fn close(&self, id: u64, reason: &str) -> bool {
        let connection = lock(&self.inner).sessions.get(&id).cloned();
        match connection {
            Some(c) => {
                c.outbox.close_with_error(reason.to_owned());
                true
            }
            None => false,
        }
    }

    /// Adds a trace rule (also for sessions that connect later); returns
    /// how many live sessions it matches.
    pub(crate) fn trace_on(&self, rule: TraceRule) -> usize {
        let mut inner = lock(&self.inner);
        let mut matched = 0;
        for c in inner.sessions.values() {
            if rule.matches(c) {
                c.traced.store(true, Ordering::Relaxed);
                matched += 1;
            }
        }
        inner.trace.insert(rule);
        matched
    }

    /// Removes a trace rule; `None` if there was no such rule, else how
    /// many live sessions stopped being traced (sessions another rule still
    /// matches stay traced).
    pub(crate) fn trace_off(&self, rule: &TraceRule) -> Option<usize> {
        let mut inner = lock(&self.inner);
        if !inner.trace.remove(rule) {
            return None;
        }
        let mut stopped = 0;
        for c in inner.sessions.values() {
            if rule.matches(c) && !inner.should_trace(c) {
                c.traced.store(false, Ordering::Relaxed);
                stopped += 1;
            }
        }
        Some(stopped)
    }

    /// The trace rules in force.
    pub(crate) fn trace_rules(&self) -> Vec<TraceRule> {
        lock(&self.inner).trace.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SlowConsumerPolicy;
    use crate::stats::Stats;

    fn entry(user: Option<&str>, peer: &str) -> Arc<Entry> {
        Arc::new(Entry {
            user: user.map(str::to_owned),
            peer: peer.parse().ok(),
            transport: "tcp",
            version: "1.2",
            subscriptions: AtomicUsize::new(0),
            outbox: Arc::new(Outbox::new(
                16,
                SlowConsumerPolicy::DropOldest,
                Arc::new(Stats::default()),
            )),
        })
    }

    #[test]
    fn trace_rules_follow_users_and_addresses() {
        let registry = SessionRegistry::default();
        let alice = registry.insert(1, entry(Some("alice"), "10.0.0.1:5000"));
        let bob = registry.insert(2, entry(Some("bob"), "[::ffff:10.0.0.2]:5000"));
        assert!(!alice.is_traced() && !bob.is_traced());

        assert_eq!(registry.trace_on(TraceRule::User("alice".into())), 1);
        assert!(alice.is_traced() && !bob.is_traced());
        let ip: IpAddr = "10.0.0.2".parse().expect("ip");
        assert_eq!(registry.trace_on(TraceRule::address(ip)), 1);
        assert!(bob.is_traced());

        // A later session is traced from the start.
        let carol = registry.insert(3, entry(Some("carol"), "10.0.0.2:6000"));
        assert!(carol.is_traced());
        // Another rule still matches alice.
        let alice_ip: IpAddr = "10.0.0.1".parse().expect("ip");
        registry.trace_on(TraceRule::address(alice_ip));
        assert_eq!(
            registry.trace_off(&TraceRule::User("alice".into())),
            Some(0)
        );
        assert!(alice.is_traced());
        assert_eq!(registry.trace_off(&TraceRule::address(alice_ip)), Some(1));
        assert!(!alice.is_traced());
        assert_eq!(registry.trace_off(&TraceRule::address(alice_ip)), None);
        assert_eq!(registry.trace_rules(), vec![TraceRule::address(ip)]);
    }

    #[test]
    fn connection_counters_and_rates() {
        let registry = SessionRegistry::default();
        let c = registry.insert(7, entry(None, "127.0.0.1:1"));
        c.frame_in(100);
        c.frame_in(50);
        c.frame_out(10);
        let list = registry.list();
        assert_eq!(list.len(), 1);
        let info = &list[0];
        assert_eq!((info.frames_in, info.bytes_in), (2, 150));
        assert_eq!((info.frames_out, info.bytes_out), (1, 10));
        assert_eq!(info.address.as_deref(), Some("127.0.0.1"));
        assert!(info.rates.frames_in > 0.0);
        registry.remove(7);
        assert!(registry.list().is_empty());
    }
}
