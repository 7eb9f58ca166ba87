//! Per-user rate limits (token buckets) for posts, typing and read
//! markers, checked in the session hooks before a command is queued, and
//! for the error notices of refused SENDs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Users tracked before full buckets are forgotten.
const MAX_TRACKED: usize = 100_000;

/// What is limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Posts, edits, reactions and redactions.
    Post,
    /// Typing indicators.
    Typing,
    /// Read markers.
    Read,
    /// Inbox notices of SENDs refused in the session hooks.
    Notice,
}

/// A sustained rate and a burst; `per_sec == 0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// The bucket's size.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every user.
#[derive(Debug)]
pub struct Limiter {
    rates: [Rate; 4],
    buckets: Mutex<HashMap<(String, Kind), Bucket>>,
}

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Post => 0,
        Kind::Typing => 1,
        Kind::Read => 2,
        Kind::Notice => 3,
    }
}

impl Limiter {
    /// Limits for posts, typing, reads and error notices.
    pub fn new(post: Rate, typing: Rate, read: Rate, notice: Rate) -> Limiter {
        Limiter {
            rates: [post, typing, read, notice],
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `user`; false when the user is over the limit.
    pub fn allow(&self, user: &str, kind: Kind, now: Instant) -> bool {
        let rate = self.rates[index(kind)];
        if rate.per_sec <= 0.0 {
            return true;
        }
        let burst = rate.burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&(user.to_owned(), kind)) {
            let rates = self.rates;
            buckets.retain(|(_, k), b| {
                let r = rates[index(*k)];
                b.tokens + now.duration_since(b.at).as_secs_f64() * r.per_sec < r.burst.max(1.0)
            });
        }
        let bucket = buckets.entry((user.to_owned(), kind)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let two = Rate {
            per_sec: 2.0,
            burst: 3.0,
        };
        let off = Rate {
            per_sec: 0.0,
            burst: 0.0,
        };
        let l = Limiter::new(two, off, two, two);
        let t0 = Instant::now();
        assert!((0..3).all(|_| l.allow("a", Kind::Post, t0)));
        assert!(!l.allow("a", Kind::Post, t0));
        assert!(l.allow("b", Kind::Post, t0), "per user");
        assert!(l.allow("a", Kind::Read, t0), "per kind");
        assert!((0..100).all(|_| l.allow("a", Kind::Typing, t0)), "no limit");
        assert!(!l.allow("a", Kind::Post, t0 + Duration::from_millis(400)));
        assert!(l.allow("a", Kind::Post, t0 + Duration::from_millis(600)));
    }
}
