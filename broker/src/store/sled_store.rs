//! The on-disk store, on `sled`.

use super::{message_key, parse_message_key, Store, StoreError, StoredQueue};
use std::path::Path;

/// sled's page cache (its default is 1 GiB).
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// A [`Store`] in a sled database directory.
///
/// Two trees: `messages` (key: queue + sequence, value: the encoded
/// message) and `meta` (durable subscriptions and other small records).
/// Writes go to sled's in-memory log; [`Store::sync`] flushes and fsyncs it.
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    messages: sled::Tree,
    meta: sled::Tree,
}

fn err(e: sled::Error) -> StoreError {
    StoreError(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Durability comes from our own group commit; this only bounds
            // how long an unsynced write may sit in memory.
            .flush_every_ms(Some(1000))
            // Recovery reads everything once; a big page cache would only
            // keep a second copy of the queues in memory.
            .cache_capacity(SLED_CACHE_BYTES)
            .open()
            .map_err(|e| StoreError(format!("cannot open store at {}: {e}", dir.display())))?;
        let messages = db.open_tree("messages").map_err(err)?;
        let meta = db.open_tree("meta").map_err(err)?;
        Ok(SledStore { db, messages, meta })
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

impl Store for SledStore {
    fn save(&self, queue: &str, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        self.messages
            .insert(message_key(queue, seq), record)
            .map(|_| ())
            .map_err(err)
    }

    fn delete(&self, queue: &str, seq: u64) -> Result<(), StoreError> {
        self.messages
            .remove(message_key(queue, seq))
            .map(|_| ())
            .map_err(err)
    }

    fn load(&self) -> Result<Vec<StoredQueue>, StoreError> {
        let mut out: Vec<StoredQueue> = Vec::new();
        for entry in self.messages.iter() {
            let (key, value) = entry.map_err(err)?;
            match parse_message_key(&key) {
                Some((queue, seq)) => super::push_row(&mut out, queue, seq, value.to_vec()),
                None => tracing::warn!("skipping a stored message with a malformed key"),
            }
        }
        Ok(out)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(err)
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta
            .insert(key.as_bytes(), value)
            .map(|_| ())
            .map_err(err)
    }

    fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        self.meta.remove(key.as_bytes()).map(|_| ()).map_err(err)
    }

    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.meta.scan_prefix(prefix.as_bytes()) {
            let (k, v) = entry.map_err(err)?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }
    fn size_bytes(&self) -> u64 {
        self.size_on_disk()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_meta_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("stompede-sled-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = SledStore::open(&dir).unwrap();
            store.save("/queue/a", 1, b"one").unwrap();
            store.save("/queue/a", 2, b"two").unwrap();
            store.save("/queue/b", 7, b"seven").unwrap();
            store.delete("/queue/a", 1).unwrap();
            store.put_meta("durable/x", b"binding").unwrap();
            store.sync().unwrap();
        }
        // sled's background flusher lets go of the lock file shortly after
        // the last handle is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let store = loop {
            match SledStore::open(&dir) {
                Ok(store) => break store,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.0.contains("lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert!(store.size_bytes() > 0);
        let queues = store.load().unwrap();
        assert_eq!(queues.len(), 2);
        assert_eq!(queues[0].name, "/queue/a");
        assert_eq!(queues[0].messages, vec![(2, b"two".to_vec())]);
        assert_eq!(queues[1].messages, vec![(7, b"seven".to_vec())]);
        assert_eq!(
            store.list_meta("durable/").unwrap(),
            vec![("durable/x".to_owned(), b"binding".to_vec())]
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
