//! The on-disk [`KvStore`]: a sled database in the plugin's data
//! directory.

use super::{BoxFuture, Entries, KvStore, Op, StoreError};
use std::path::Path;
use std::time::{Duration, Instant};

/// A sled database (its default tree; every record kind has its own key
/// prefix, so one batch can write several kinds atomically).
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
}

fn failed(e: sled::Error) -> StoreError {
    StoreError(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database at `path`. A database still held by
    /// a stopping broker in the same process is waited for (up to 5 s).
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match sled::Config::new().path(path).open() {
                Ok(db) => return Ok(SledStore { db }),
                // sled reports a held lock as an `Other` I/O error whose
                // text names it.
                Err(sled::Error::Io(e))
                    if (e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock"))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }
}

impl KvStore for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(failed)?.map(|v| v.to_vec()))
    }

    fn range(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let range = self.db.range(start..end);
        let mut out = Vec::with_capacity(limit.min(1024));
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = if reverse {
            Box::new(range.rev())
        } else {
            Box::new(range)
        };
        for entry in entries.take(limit) {
            let (k, v) = entry.map_err(failed)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k, v),
                Op::Delete(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(failed)
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.db.flush_async().await.map_err(failed)?;
            Ok(())
        })
    }
}
