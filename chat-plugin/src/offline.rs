//! The offline-member hook: when a message is stored, the room's members
//! with no connected session are handed to the embedder's
//! [`OfflineHook`]s (push notifications), and to the configured webhook.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// A stored message that members with no session did not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineMessage {
    /// The room id.
    pub room: String,
    /// The room's display name.
    pub room_name: String,
    /// The message's sequence number.
    pub seq: u64,
    /// Who sent it.
    pub sender: String,
    /// When it was stored (ms since the Unix epoch).
    pub timestamp: u64,
    /// The members with no connected session, sorted.
    pub users: Vec<String>,
    /// The message's `content-type`, if it had one.
    pub content_type: Option<String>,
    /// The message's body.
    pub body: Bytes,
}

/// A callback for embedders, registered with
/// [`ChatPlugin::with_offline_hook`](crate::ChatPlugin::with_offline_hook).
/// It runs on the room's task right after the message is stored: it must
/// be quick and must not block (hand the work to a task or a channel).
pub trait OfflineHook: Send + Sync + 'static {
    /// Members of `message.room` with no session got `message`.
    fn offline_message(&self, message: &OfflineMessage);
}

/// Which users have a connected session (kept by the connect and
/// disconnect hooks).
#[derive(Debug, Default)]
pub struct Online {
    sessions: Mutex<HashMap<String, HashSet<u64>>>,
}

impl Online {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<u64>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session of `user` connected.
    pub fn connected(&self, user: &str, session: u64) {
        self.sessions()
            .entry(user.to_owned())
            .or_default()
            .insert(session);
    }

    /// A session of `user` ended.
    pub fn disconnected(&self, user: &str, session: u64) {
        let mut sessions = self.sessions();
        if let Some(set) = sessions.get_mut(user) {
            set.remove(&session);
            if set.is_empty() {
                sessions.remove(user);
            }
        }
    }

    /// How many users have at least one session.
    pub fn users_online(&self) -> usize {
        self.sessions().len()
    }

    /// Those of `users` with no session.
    pub fn offline<'a>(&self, users: impl Iterator<Item = &'a String>) -> Vec<String> {
        let sessions = self.sessions();
        let mut out: Vec<String> = users
            .filter(|u| !sessions.contains_key(u.as_str()))
            .cloned()
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_online_while_a_session_is() {
        let online = Online::default();
        online.connected("a", 1);
        online.connected("a", 2);
        let users = ["a".to_owned(), "b".to_owned()];
        assert_eq!(online.offline(users.iter()), ["b"]);
        online.disconnected("a", 1);
        assert_eq!(online.offline(users.iter()), ["b"]);
        online.disconnected("a", 2);
        assert_eq!(online.offline(users.iter()), ["a", "b"]);
    }
}
