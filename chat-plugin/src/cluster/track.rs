//! Which log records this node has applied and stored, per partition:
//! the watermark (every record below it is stored, by whatever room) is
//! where a restarted node resumes reading.
//!
//! Records of one partition reach their rooms in order, but several rooms
//! share a partition and each stores in its own turns, so a record can be
//! stored before an older one of another room. The watermark is the
//! oldest record handed to a room and not stored yet (or one past the
//! newest record seen when none is outstanding). A stored watermark may be
//! older than the truth (rooms write it concurrently), never newer; rooms
//! skip records at or below their own applied offset, so reading a record
//! twice is harmless.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Partition {
    /// One past the newest offset seen.
    next: u64,
    /// Offsets handed to a room and not stored yet.
    outstanding: BTreeSet<u64>,
}

/// The watermarks of every partition.
#[derive(Debug, Default)]
pub struct Track {
    // A std Mutex: held for a set operation, never across `.await`.
    partitions: Mutex<HashMap<u32, Partition>>,
}

impl Track {
    fn with<T>(&self, partition: u32, f: impl FnOnce(&mut Partition) -> T) -> T {
        let mut map = self.partitions.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(partition).or_default())
    }

    /// A record is handed to its room.
    pub fn begin(&self, partition: u32, offset: u64) {
        self.with(partition, |p| {
            p.outstanding.insert(offset);
            p.next = p.next.max(offset + 1);
        });
    }

    /// A record needs nothing stored (damaged, or not for this plugin).
    pub fn skip(&self, partition: u32, offset: u64) {
        self.with(partition, |p| p.next = p.next.max(offset + 1));
    }

    /// A record's effects are stored (or it had none).
    pub fn done(&self, partition: u32, offset: u64) {
        self.with(partition, |p| {
            p.outstanding.remove(&offset);
        });
    }

    /// Every record of `partition` below this offset is stored.
    pub fn watermark(&self, partition: u32) -> u64 {
        self.with(partition, |p| {
            p.outstanding.first().copied().unwrap_or(p.next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_waits_for_the_oldest_outstanding_record() {
        let t = Track::default();
        assert_eq!(t.watermark(0), 0);
        t.begin(0, 5);
        t.begin(0, 6);
        t.begin(0, 7);
        t.skip(0, 8);
        assert_eq!(t.watermark(0), 5);
        t.done(0, 6);
        assert_eq!(t.watermark(0), 5, "room of record 5 has not stored it");
        t.done(0, 5);
        assert_eq!(t.watermark(0), 7);
        t.done(0, 7);
        assert_eq!(t.watermark(0), 9);
        assert_eq!(t.watermark(1), 0, "partitions are separate");
    }
}
