//! Which sessions are connected, for the admin API: who they are, what
//! they subscribe to, and a way to close one.

use crate::session::outbox::{lock, Outbox};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the admin API shows of one connection.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The session id.
    pub id: u64,
    /// The authenticated user, if any.
    pub user: Option<String>,
    /// The peer address, if the transport has one.
    pub peer: Option<String>,
    /// `tcp` or `ws` (`tcp` also for in-process connections).
    pub transport: &'static str,
    /// The negotiated STOMP version.
    pub version: &'static str,
    /// Subscriptions open now.
    pub subscriptions: usize,
}

/// A live session as the registry holds it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub user: Option<String>,
    pub peer: Option<SocketAddr>,
    pub transport: &'static str,
    pub version: &'static str,
    pub subscriptions: AtomicUsize,
    pub outbox: Arc<Outbox>,
}

/// Every connected session, by id.
#[derive(Debug, Default)]
pub(crate) struct SessionRegistry {
    // std Mutex: held for a map operation only.
    sessions: Mutex<BTreeMap<u64, Arc<Entry>>>,
}

impl SessionRegistry {
    pub(crate) fn insert(&self, id: u64, entry: Arc<Entry>) {
        lock(&self.sessions).insert(id, entry);
    }

    pub(crate) fn remove(&self, id: u64) {
        lock(&self.sessions).remove(&id);
    }

    /// A snapshot of every connection.
    pub(crate) fn list(&self) -> Vec<ConnectionInfo> {
        lock(&self.sessions)
            .iter()
            .map(|(id, e)| ConnectionInfo {
                id: *id,
                user: e.user.clone(),
                peer: e.peer.map(|p| p.to_string()),
                transport: e.transport,
                version: e.version,
                subscriptions: e.subscriptions.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Sends connection `id` an ERROR and closes it; false if unknown.
    pub(crate) fn close(&self, id: u64, reason: &str) -> bool {
        let entry = lock(&self.sessions).get(&id).cloned();
        match entry {
            Some(e) => {
                e.outbox.close_with_error(reason.to_owned());
                true
            }
            None => false,
        }
    }
}
