//! A store that lives as long as the process: for tests and for users who
//! want no disk at all.

use super::{message_key, parse_message_key, Store, StoreError, StoredQueue};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An in-memory [`Store`]. Nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore {
    // std Mutex: held only for a map operation.
    messages: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    meta: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl Store for MemoryStore {
    fn save(&self, queue: &str, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        crate::session::outbox::lock(&self.messages)
            .insert(message_key(queue, seq), record.to_vec());
        Ok(())
    }

    fn delete(&self, queue: &str, seq: u64) -> Result<(), StoreError> {
        crate::session::outbox::lock(&self.messages).remove(&message_key(queue, seq));
        Ok(())
    }

    fn load(&self) -> Result<Vec<StoredQueue>, StoreError> {
        let messages = crate::session::outbox::lock(&self.messages);
        Ok(super::group_by_queue(messages.iter().filter_map(
            |(k, v)| parse_message_key(k).map(|(q, s)| (q, s, v.clone())),
        )))
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        crate::session::outbox::lock(&self.meta).insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete_meta(&self, key: &str) -> Result<(), StoreError> {
        crate::session::outbox::lock(&self.meta).remove(key);
        Ok(())
    }

    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let meta = crate::session::outbox::lock(&self.meta);
        Ok(meta
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
