//! Storage: one small ordered key-value trait ([`KvStore`]) with an
//! in-memory and a sled implementation. The chat's records and key layout
//! live in the crate's `repo` module; this one only stores bytes.

mod memory;
mod sled_store;

pub use memory::MemoryStore;
pub use sled_store::SledStore;

use std::future::Future;
use std::pin::Pin;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[error("chat storage: {0}")]
pub struct StoreError(pub String);

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Sets `key` to a value.
    Put(Vec<u8>, Vec<u8>),
    /// Removes `key`.
    Delete(Vec<u8>),
}

/// Key-value pairs read from a range.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A boxed future, for the one async method of [`KvStore`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An ordered byte store. Writes come in atomic batches; `flush` makes
/// every applied batch durable (one flush covers many batches: group
/// commit).
pub trait KvStore: Send + Sync + 'static {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries with `start <= key < end`, ascending or (with
    /// `reverse`) descending.
    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Entries, StoreError>;

    /// Applies `ops` atomically.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;

    /// Makes everything applied so far durable.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn KvStore) {
        let ops = (0u8..10)
            .map(|i| Op::Put(vec![b'k', i], vec![i]))
            .chain([Op::Put(b"z".to_vec(), b"last".to_vec())])
            .collect();
        store.apply(ops).expect("apply");
        assert_eq!(store.get(&[b'k', 3]).expect("get"), Some(vec![3]));
        assert_eq!(store.get(b"nope").expect("get"), None);
        let forward = store
            .range(&[b'k', 2], &[b'k', 6], false, 3)
            .expect("range");
        let keys: Vec<u8> = forward.iter().map(|(k, _)| k[1]).collect();
        assert_eq!(keys, vec![2, 3, 4]);
        let backward = store.range(&[b'k', 2], &[b'k', 6], true, 3).expect("range");
        let keys: Vec<u8> = backward.iter().map(|(k, _)| k[1]).collect();
        assert_eq!(keys, vec![5, 4, 3]);
        store
            .apply(vec![Op::Delete(vec![b'k', 4])])
            .expect("delete");
        let all = store.range(b"k", b"l", false, 100).expect("range");
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn memory_store_orders_ranges() {
        exercise(&MemoryStore::default());
    }

    #[tokio::test]
    async fn sled_store_orders_ranges_and_persists() {
        let dir = std::env::temp_dir().join(format!(
            "stompede-chat-kv-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        {
            let store = SledStore::open(&dir).expect("open");
            exercise(&store);
            store.flush().await.expect("flush");
        }
        let store = SledStore::open(&dir).expect("reopen");
        assert_eq!(store.get(b"z").expect("get"), Some(b"last".to_vec()));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
