//! Durable storage for queue messages.
//!
//! The [`Store`] trait is what the queue actors write through: one record
//! per persistent message, keyed by queue and a per-queue sequence number,
//! deleted when the message is acknowledged (or expires, or moves to a
//! dead-letter queue). [`SledStore`] keeps it on disk; [`MemoryStore`] keeps
//! it for the life of the process. Durability of a write is a separate step,
//! [`Store::sync`], which the [`commit::Committer`] batches so that many
//! publishers share one fsync (group commit).

pub(crate) mod commit;
mod memory;
mod record;
mod sled_store;

pub use memory::MemoryStore;
pub(crate) use record::{decode_message, encode_message};
pub use sled_store::SledStore;

/// A storage failure (disk full, I/O error, corrupt data).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// The stored messages of one queue, in sequence order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoredQueue {
    /// The queue's destination, e.g. `/queue/orders`.
    pub name: String,
    /// `(sequence, encoded message)`, ascending.
    pub messages: Vec<(u64, Vec<u8>)>,
}

/// Where persistent messages live.
///
/// Writes (`save`, `delete`) must be cheap and may be buffered; only
/// [`Store::sync`] promises that everything written before it survives a
/// crash. Implementations are called from queue actors and must not block
/// for long outside `sync`, which runs on a blocking thread.
pub trait Store: Send + Sync + 'static {
    /// Records message `seq` of `queue`.
    fn save(&self, queue: &str, seq: u64, record: &[u8]) -> Result<(), StoreError>;
    /// Forgets message `seq` of `queue`.
    fn delete(&self, queue: &str, seq: u64) -> Result<(), StoreError>;
    /// Every stored message, grouped by queue.
    fn load(&self) -> Result<Vec<StoredQueue>, StoreError>;
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), StoreError>;
    /// Stores a small named value (e.g. a durable subscription).
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes a named value.
    fn delete_meta(&self, key: &str) -> Result<(), StoreError>;
    /// Every named value whose key starts with `prefix`.
    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Bytes the store occupies on disk, for the `stompede_store_size_bytes`
    /// metric; 0 for a store without files. Called on a blocking thread
    /// each time metrics are scraped: a few `stat`s, not a scan.
    fn size_bytes(&self) -> u64 {
        0
    }
}

/// The key of message `seq` in `queue`: length-prefixed name, then the
/// big-endian sequence, so keys sort by queue and then by sequence.
pub(crate) fn message_key(queue: &str, seq: u64) -> Vec<u8> {
    let name = queue.as_bytes();
    let mut key = Vec::with_capacity(4 + name.len() + 8);
    key.extend_from_slice(&(name.len() as u32).to_be_bytes());
    key.extend_from_slice(name);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a key made by [`message_key`].
pub(crate) fn parse_message_key(key: &[u8]) -> Option<(&str, u64)> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(key.get(4..4 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(4 + len..)?.try_into().ok()?);
    Some((name, seq))
}

/// Groups `(queue, seq, record)` rows (sorted by queue, then seq) into
/// queues.
pub(crate) fn group_by_queue<'a>(
    rows: impl Iterator<Item = (&'a str, u64, Vec<u8>)>,
) -> Vec<StoredQueue> {
    let mut out: Vec<StoredQueue> = Vec::new();
    for (queue, seq, record) in rows {
        push_row(&mut out, queue, seq, record);
    }
    out
}

/// Appends one row to `out`, starting a new queue when the name changes.
pub(crate) fn push_row(out: &mut Vec<StoredQueue>, queue: &str, seq: u64, record: Vec<u8>) {
    match out.last_mut() {
        Some(last) if last.name == queue => last.messages.push((seq, record)),
        _ => out.push(StoredQueue {
            name: queue.to_owned(),
            messages: vec![(seq, record)],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_round_trip_and_sort_by_sequence() {
        let a = message_key("/queue/a", 2);
        let b = message_key("/queue/a", 10);
        assert!(a < b);
        assert_eq!(parse_message_key(&b), Some(("/queue/a", 10)));
        assert_eq!(parse_message_key(b"xx"), None);
    }
}
