//! Who is in a room: the users with a session subscribed to its timeline.
//! A user whose last subscription ends stays shown for a grace period, so
//! a reconnect does not flicker. Ephemeral: nothing is stored.

use std::collections::{BTreeMap, BTreeSet};
use tokio::time::{Duration, Instant};

/// A change others are told about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// The user came (`x-presence:join`).
    Join(String),
    /// The user went (`x-presence:leave`).
    Leave(String),
}

/// The users shown in a room.
#[derive(Debug, Default)]
pub struct Presence {
    /// Shown users; `Some(deadline)` for those leaving after the grace.
    shown: BTreeMap<String, Option<Instant>>,
}

impl Presence {
    /// Brings the shown users in step with `subscribed` (the users with a
    /// timeline subscription now): newcomers join, a returning user's
    /// leave is cancelled, users gone start their grace period.
    pub fn sync(
        &mut self,
        subscribed: &BTreeSet<&str>,
        now: Instant,
        grace: Duration,
    ) -> Vec<Delta> {
        let mut deltas = Vec::new();
        for (user, leaving) in self.shown.iter_mut() {
            if subscribed.contains(user.as_str()) {
                *leaving = None;
            } else if leaving.is_none() {
                *leaving = Some(now + grace);
            }
        }
        for user in subscribed {
            if !self.shown.contains_key(*user) {
                self.shown.insert((*user).to_owned(), None);
                deltas.push(Delta::Join((*user).to_owned()));
            }
        }
        deltas.extend(self.expire(now));
        deltas
    }

    /// A user who left the room: gone at once, without grace.
    pub fn remove(&mut self, user: &str) -> Option<Delta> {
        self.shown
            .remove(user)
            .map(|_| Delta::Leave(user.to_owned()))
    }

    /// The users whose grace period is over.
    pub fn expire(&mut self, now: Instant) -> Vec<Delta> {
        let gone: Vec<String> = self
            .shown
            .iter()
            .filter(|(_, leaving)| leaving.is_some_and(|at| at <= now))
            .map(|(user, _)| user.clone())
            .collect();
        gone.into_iter()
            .map(|user| {
                self.shown.remove(&user);
                Delta::Leave(user)
            })
            .collect()
    }

    /// When the next grace period ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.shown.values().flatten().min().copied()
    }

    /// Whether `user` is shown.
    pub fn is_shown(&self, user: &str) -> bool {
        self.shown.contains_key(user)
    }

    /// The shown users, sorted.
    pub fn users(&self) -> Vec<&str> {
        self.shown.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_leaves_after_grace_and_reconnects_do_not_flicker() {
        let mut p = Presence::default();
        let t0 = Instant::now();
        let grace = Duration::from_secs(5);
        let set = |users: &[&'static str]| users.iter().copied().collect::<BTreeSet<&str>>();
        assert_eq!(
            p.sync(&set(&["a", "b"]), t0, grace),
            vec![Delta::Join("a".into()), Delta::Join("b".into())]
        );
        assert!(p.sync(&set(&["a"]), t0, grace).is_empty(), "b in grace");
        assert_eq!(p.users(), ["a", "b"]);
        assert_eq!(p.next_deadline(), Some(t0 + grace));
        // b comes back within the grace: nothing to tell.
        assert!(p.sync(&set(&["a", "b"]), t0 + grace / 2, grace).is_empty());
        assert_eq!(p.next_deadline(), None);
        p.sync(&set(&["a"]), t0, grace);
        assert!(p.expire(t0 + grace / 2).is_empty());
        assert_eq!(p.expire(t0 + grace), vec![Delta::Leave("b".into())]);
        assert_eq!(p.remove("a"), Some(Delta::Leave("a".into())));
        assert_eq!(p.remove("a"), None);
        assert!(p.users().is_empty());
    }
}
