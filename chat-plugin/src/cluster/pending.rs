//! The origin's table of commands waiting for their answer: a command
//! sent to the log is answered when this node applies its record (matched
//! by request id), or at once with an error if the log refused it.
//! Request ids restart at 1 with every start of the plugin: a record is
//! matched here only if this start appended it (node id and incarnation,
//! see `apply`).

use crate::rooms::Caller;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The most commands waiting for their record; more are refused ("busy").
pub const MAX_PENDING: usize = 65_536;

/// A command waiting for its record.
#[derive(Debug)]
pub struct Waiting {
    /// Who asked (where the RECEIPT and replies go).
    pub caller: Caller,
    /// The command's name in answers.
    pub command: &'static str,
}

/// Commands waiting for their record, by request id.
#[derive(Debug, Default)]
pub struct Pending {
    next: AtomicU64,
    // A std Mutex: held only for a map operation, never across `.await`.
    waiting: Mutex<HashMap<u64, Waiting>>,
}

impl Pending {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a command; its request id, or `None` when the table is
    /// full.
    pub fn insert(&self, caller: Caller, command: &'static str) -> Option<u64> {
        let mut waiting = self.waiting();
        if waiting.len() >= MAX_PENDING {
            return None;
        }
        // Ids start at 1: 0 is a record nobody waits for.
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        waiting.insert(id, Waiting { caller, command });
        Some(id)
    }

    /// Takes the command of `request` out of the table.
    pub fn take(&self, request: u64) -> Option<Waiting> {
        self.waiting().remove(&request)
    }

    /// How many commands wait.
    pub fn len(&self) -> usize {
        self.waiting().len()
    }
}
