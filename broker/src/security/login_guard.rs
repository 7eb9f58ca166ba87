//! Limits failed logins per client address (`max_failed_logins_per_minute`).
//!
//! Each address has a fixed one-minute window that starts at its first
//! failure; once it has made the configured number of failures inside the
//! window, [`LoginGuard::is_blocked`] is true until the window ends, and the
//! session refuses its CONNECTs without checking credentials.
//!
//! IPv6 addresses are counted per /64 network (one host usually owns a
//! whole /64, so per-address counting would be trivial to dodge), and
//! IPv4-mapped IPv6 addresses as the IPv4 address.
//!
//! Memory is bounded: at most [`MAX_TRACKED`] networks are tracked; expired
//! windows are dropped as new ones start, and when the table is still full
//! the oldest window is evicted.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The length of a counting window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The most addresses (or IPv6 /64 networks) tracked at once.
pub const MAX_TRACKED: usize = 65_536;

/// One tracked address.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When its window started (its key in the age index, with `seq`).
    start: Instant,
    /// Tie-breaker making age-index keys unique.
    seq: u64,
    /// Failures inside the window.
    failures: u32,
}

/// The table behind the lock.
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    /// Entries ordered by window start: the oldest first.
    by_age: BTreeMap<(Instant, u64), IpAddr>,
    next_seq: u64,
}

impl Table {
    fn remove(&mut self, ip: &IpAddr) {
        if let Some(e) = self.entries.remove(ip) {
            self.by_age.remove(&(e.start, e.seq));
        }
    }

    /// Drops entries whose window has ended by `now`.
    fn purge_expired(&mut self, now: Instant) {
        while let Some((&(start, seq), &ip)) = self.by_age.iter().next() {
            if now.saturating_duration_since(start) < WINDOW {
                break;
            }
            self.by_age.remove(&(start, seq));
            self.entries.remove(&ip);
        }
    }

    /// Drops the oldest entry.
    fn evict_oldest(&mut self) {
        if let Some(((start, seq), ip)) = self.by_age.pop_first() {
            debug_assert!(self
                .entries
                .get(&ip)
                .is_some_and(|e| e.start == start && e.seq == seq));
            self.entries.remove(&ip);
        }
    }
}

/// Counts failed logins per client network and says when one must wait.
/// Thread-safe; the lock is held for one map operation at a time.
#[derive(Debug)]
pub struct LoginGuard {
    limit: u32,
    capacity: usize,
    table: Mutex<Table>,
}

impl LoginGuard {
    /// A guard allowing `max_failures_per_minute` failures per address per
    /// window; 0 never blocks (and tracks nothing).
    pub fn new(max_failures_per_minute: u32) -> LoginGuard {
        LoginGuard::with_capacity(max_failures_per_minute, MAX_TRACKED)
    }

    /// Like [`LoginGuard::new`], tracking at most `capacity` addresses
    /// (at least 1).
    pub fn with_capacity(max_failures_per_minute: u32, capacity: usize) -> LoginGuard {
        LoginGuard {
            limit: max_failures_per_minute,
            capacity: capacity.max(1),
            table: Mutex::new(Table::default()),
        }
    }

    /// Whether `ip` has used up its failures for the current window.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        self.is_blocked_at(ip, Instant::now())
    }

    /// [`LoginGuard::is_blocked`] at time `now`.
    pub fn is_blocked_at(&self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return false;
        }
        let key = bucket(ip);
        self.lock().entries.get(&key).is_some_and(|e| {
            now.saturating_duration_since(e.start) < WINDOW && e.failures >= self.limit
        })
    }

    /// Counts a failed login from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// [`LoginGuard::record_failure`] at time `now`.
    pub fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let key = bucket(ip);
        let mut table = self.lock();
        if let Some(e) = table.entries.get_mut(&key) {
            if now.saturating_duration_since(e.start) < WINDOW {
                e.failures = e.failures.saturating_add(1);
                return;
            }
            table.remove(&key);
        }
        table.purge_expired(now);
        while table.entries.len() >= self.capacity {
            table.evict_oldest();
        }
        let seq = table.next_seq;
        table.next_seq = seq.wrapping_add(1);
        table.by_age.insert((now, seq), key);
        table.entries.insert(
            key,
            Entry {
                start: now,
                seq,
                failures: 1,
            },
        );
    }

    /// Notes a successful login from `ip`.
    ///
    /// Deliberately does not reset the failure count: otherwise a client
    /// holding one valid account could interleave successful logins with
    /// guesses at another account's password and never be blocked. A
    /// legitimate user rarely fails that often within one minute, and the
    /// window ends on its own.
    pub fn record_success(&self, ip: IpAddr) {
        self.record_success_at(ip, Instant::now());
    }

    /// [`LoginGuard::record_success`] at time `now`: drops the address's
    /// entry only if its window has already ended.
    pub fn record_success_at(&self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let key = bucket(ip);
        let mut table = self.lock();
        if table
            .entries
            .get(&key)
            .is_some_and(|e| now.saturating_duration_since(e.start) >= WINDOW)
        {
            table.remove(&key);
        }
    }

    /// The number of addresses (or /64 networks) currently tracked.
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The key an address is counted under: IPv4 as is (also when mapped into
/// IPv6), IPv6 by its /64 network.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    #[test]
    fn blocks_after_the_limit_within_the_window() {
        let g = LoginGuard::new(3);
        let t0 = Instant::now();
        let ip = v4(1);
        for i in 0..3 {
            assert!(!g.is_blocked_at(ip, t0), "after {i}");
            g.record_failure_at(ip, t0 + Duration::from_secs(i));
        }
        assert!(g.is_blocked_at(ip, t0 + Duration::from_secs(10)));
        assert!(!g.is_blocked_at(v4(2), t0 + Duration::from_secs(10)));
        // The window started at the first failure and ends a minute later.
        assert!(g.is_blocked_at(ip, t0 + Duration::from_secs(59)));
        assert!(!g.is_blocked_at(ip, t0 + WINDOW));
        // A new failure after the window starts a new count.
        g.record_failure_at(ip, t0 + WINDOW);
        assert!(!g.is_blocked_at(ip, t0 + WINDOW));
    }

    #[test]
    fn zero_never_blocks() {
        let g = LoginGuard::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            g.record_failure_at(v4(1), t0);
        }
        assert!(!g.is_blocked_at(v4(1), t0));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn success_does_not_reset_an_open_window() {
        let g = LoginGuard::new(2);
        let t0 = Instant::now();
        g.record_failure_at(v4(1), t0);
        g.record_success_at(v4(1), t0);
        g.record_failure_at(v4(1), t0);
        assert!(g.is_blocked_at(v4(1), t0));
        g.record_success_at(v4(1), t0 + WINDOW);
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_as_ipv4() {
        let g = LoginGuard::new(2);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        g.record_failure_at(a, t0);
        g.record_failure_at(b, t0);
        assert!(g.is_blocked_at(a, t0));
        assert!(!g.is_blocked_at(other, t0));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        g.record_failure_at(mapped, t0);
        g.record_failure_at(v4(7), t0);
        assert!(g.is_blocked_at(v4(7), t0));
        assert!(g.is_blocked_at(mapped, t0));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_is_evicted() {
        let g = LoginGuard::with_capacity(1, 4);
        let t0 = Instant::now();
        for i in 0..4u8 {
            g.record_failure_at(v4(i), t0 + Duration::from_secs(u64::from(i)));
        }
        assert_eq!(g.tracked(), 4);
        g.record_failure_at(v4(100), t0 + Duration::from_secs(10));
        assert_eq!(g.tracked(), 4);
        assert!(
            !g.is_blocked_at(v4(0), t0 + Duration::from_secs(10)),
            "oldest evicted"
        );
        assert!(g.is_blocked_at(v4(1), t0 + Duration::from_secs(10)));
        assert!(g.is_blocked_at(v4(100), t0 + Duration::from_secs(10)));
    }

    #[test]
    fn expired_entries_are_purged() {
        let g = LoginGuard::with_capacity(5, 1000);
        let t0 = Instant::now();
        for i in 0..100u8 {
            g.record_failure_at(v4(i), t0);
        }
        assert_eq!(g.tracked(), 100);
        g.record_failure_at(v4(200), t0 + WINDOW);
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn many_addresses_stay_within_the_default_bound() {
        let g = LoginGuard::new(1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 1000) {
            g.record_failure_at(IpAddr::V4(Ipv4Addr::from(i)), t0);
        }
        assert_eq!(g.tracked(), MAX_TRACKED);
    }

    #[test]
    fn shared_between_threads() {
        let g = std::sync::Arc::new(LoginGuard::new(1000));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        g.record_failure_at(v4(1), t0);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(g.is_blocked_at(v4(1), t0));
    }
}
