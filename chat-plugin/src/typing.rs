//! Who is typing in a room: set and cleared by SENDs to
//! `/room/{id}/typing`, each entry expiring unless renewed. Ephemeral.

use std::collections::BTreeMap;
use tokio::time::{Duration, Instant};

/// The typers of a room and when each entry expires.
#[derive(Debug, Default)]
pub struct Typing {
    typers: BTreeMap<String, Instant>,
}

impl Typing {
    /// `user` starts (renews) or stops typing; true if the list changed.
    pub fn set(&mut self, user: &str, typing: bool, now: Instant, ttl: Duration) -> bool {
        if typing {
            self.typers.insert(user.to_owned(), now + ttl).is_none()
        } else {
            self.typers.remove(user).is_some()
        }
    }

    /// Drops expired entries; true if the list changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.typers.len();
        self.typers.retain(|_, until| *until > now);
        self.typers.len() != before
    }

    /// When the next entry expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.typers.values().min().copied()
    }

    /// The typers, sorted.
    pub fn users(&self) -> Vec<&str> {
        self.typers.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_set_renewed_cleared_and_expire() {
        let mut t = Typing::default();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(6);
        assert!(t.set("b", true, t0, ttl));
        assert!(t.set("a", true, t0, ttl));
        assert!(
            !t.set("a", true, t0 + ttl / 2, ttl),
            "a renewal changes nothing"
        );
        assert_eq!(t.users(), ["a", "b"]);
        assert_eq!(t.next_deadline(), Some(t0 + ttl));
        assert!(t.expire(t0 + ttl));
        assert_eq!(t.users(), ["a"]);
        assert!(t.set("a", false, t0, ttl));
        assert!(!t.set("a", false, t0, ttl));
        assert!(!t.expire(t0 + ttl * 2));
    }
}
