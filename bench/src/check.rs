//! Exactly-once, in-order delivery checks.
//!
//! * [`SeqCheck`] follows one producer's stream as one receiver sees it:
//!   sequence numbers must arrive as 0, 1, 2, … with no gap, repeat or
//!   reversal (topics: every subscription sees every message in order).
//! * [`OnceSet`] records which sequence numbers of a producer were
//!   consumed by any of several competing consumers, to find duplicates
//!   and (at the end) losses across consumers (queues).

use std::sync::atomic::{AtomicU64, Ordering};

/// Order and completeness of one producer's stream at one receiver.
#[derive(Debug, Clone, Default)]
pub struct SeqCheck {
    /// The sequence number expected next.
    pub next: u64,
    /// Messages received (anomalies included).
    pub received: u64,
    /// Sequence numbers skipped over (a later message arrived first).
    pub gaps: u64,
    /// Messages that arrived after a later one (duplicates or reorders).
    pub backwards: u64,
    /// The first anomaly, described.
    pub first_problem: Option<String>,
}

impl SeqCheck {
    /// Records the arrival of `seq`.
    #[inline]
    pub fn observe(&mut self, seq: u64) {
        self.received += 1;
        if seq == self.next {
            self.next += 1;
        } else {
            self.anomaly(seq);
        }
    }

    #[cold]
    fn anomaly(&mut self, seq: u64) {
        if seq > self.next {
            if self.first_problem.is_none() {
                self.first_problem = Some(format!(
                    "expected seq {} but got {} (gap of {})",
                    self.next,
                    seq,
                    seq - self.next
                ));
            }
            self.gaps += seq - self.next;
            self.next = seq + 1;
        } else {
            if self.first_problem.is_none() {
                self.first_problem = Some(format!(
                    "seq {} arrived after seq {} (duplicate or reordered)",
                    seq,
                    self.next - 1
                ));
            }
            self.backwards += 1;
        }
    }

    /// Whether exactly `sent` messages arrived, each once, in order.
    pub fn is_complete(&self, sent: u64) -> bool {
        self.next == sent && self.received == sent && self.gaps == 0 && self.backwards == 0
    }

    /// A description of what is wrong given `sent` messages, or `None`.
    pub fn problem(&self, sent: u64) -> Option<String> {
        if self.is_complete(sent) {
            return None;
        }
        let mut s = format!(
            "received {} of {} (highest seq {}, {} skipped over, {} duplicate/reordered)",
            self.received,
            sent,
            self.next as i128 - 1,
            self.gaps,
            self.backwards
        );
        if self.next > sent {
            s.push_str(&format!("; seq {} is beyond the last sent", self.next - 1));
        }
        if let Some(p) = &self.first_problem {
            s.push_str("; first: ");
            s.push_str(p);
        }
        Some(s)
    }
}

/// A concurrent bit set over sequence numbers `0..capacity`.
#[derive(Debug)]
pub struct OnceSet {
    words: Vec<AtomicU64>,
    capacity: u64,
}

/// What [`OnceSet::mark`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// First time this number was seen.
    New,
    /// Seen before: a duplicate.
    Duplicate,
    /// Outside `0..capacity`: never sent.
    OutOfRange,
}

impl OnceSet {
    /// A set for sequence numbers below `capacity`.
    pub fn new(capacity: u64) -> Self {
        let words = capacity.div_ceil(64) as usize;
        OnceSet {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            capacity,
        }
    }

    /// Marks `seq` as seen.
    #[inline]
    pub fn mark(&self, seq: u64) -> Mark {
        if seq >= self.capacity {
            return Mark::OutOfRange;
        }
        let bit = 1u64 << (seq % 64);
        match self.words.get((seq / 64) as usize) {
            Some(w) if w.fetch_or(bit, Ordering::Relaxed) & bit == 0 => Mark::New,
            Some(_) => Mark::Duplicate,
            None => Mark::OutOfRange,
        }
    }

    /// How many of `0..upto` are missing, and the first missing one.
    pub fn missing_below(&self, upto: u64) -> (u64, Option<u64>) {
        let mut missing = 0;
        let mut first = None;
        for seq in 0..upto.min(self.capacity) {
            let bit = 1u64 << (seq % 64);
            let seen = self
                .words
                .get((seq / 64) as usize)
                .is_some_and(|w| w.load(Ordering::Relaxed) & bit != 0);
            if !seen {
                missing += 1;
                first.get_or_insert(seq);
            }
        }
        missing += upto.saturating_sub(self.capacity);
        (missing, first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_is_complete() {
        let mut c = SeqCheck::default();
        for i in 0..10 {
            c.observe(i);
        }
        assert!(c.is_complete(10));
        assert!(c.problem(10).is_none());
        assert!(c.problem(11).is_some());
    }

    #[test]
    fn gaps_and_duplicates_are_found() {
        let mut c = SeqCheck::default();
        for i in [0, 1, 3, 4] {
            c.observe(i);
        }
        assert_eq!(c.gaps, 1);
        assert!(!c.is_complete(5));
        let mut d = SeqCheck::default();
        for i in [0, 1, 1, 2] {
            d.observe(i);
        }
        assert_eq!(d.backwards, 1);
        assert!(!d.is_complete(3));
        let p = d.problem(3).unwrap();
        assert!(p.contains("duplicate"), "{p}");
    }

    #[test]
    fn once_set() {
        let s = OnceSet::new(130);
        assert_eq!(s.mark(5), Mark::New);
        assert_eq!(s.mark(5), Mark::Duplicate);
        assert_eq!(s.mark(129), Mark::New);
        assert_eq!(s.mark(130), Mark::OutOfRange);
        assert_eq!(s.missing_below(6), (5, Some(0)));
    }
}
