//! The ready messages of one queue, by priority (0–9, higher first; FIFO
//! within a priority).

use std::collections::VecDeque;
use std::sync::Arc;
use stompede_plugin::Message;

/// Priority levels of the `priority` header.
const LEVELS: usize = 10;
/// The priority of a message without a valid `priority` header.
pub(super) const DEFAULT_PRIORITY: u8 = 4;

/// A message in the queue, ready or delivered-but-unacked.
#[derive(Debug)]
pub(super) struct QueuedMessage {
    pub message: Arc<Message>,
    /// Its key in the store, if it is persistent.
    pub seq: Option<u64>,
    /// Deliveries so far.
    pub deliveries: u32,
    /// Whether it may have been delivered before (after a crash, a NACK or
    /// a consumer leaving).
    pub redelivered: bool,
    /// Milliseconds since the epoch after which it is never delivered.
    pub expires_at: Option<u64>,
    pub priority: u8,
    /// Where the cluster took it from (a Kafka partition), if it came
    /// through the cluster; told when the message is done with.
    pub origin: Option<Box<dyn super::Origin>>,
}

impl QueuedMessage {
    pub(super) fn body_len(&self) -> u64 {
        self.message.body.len() as u64
    }
}

/// Ready messages by priority, with their count and body bytes.
#[derive(Debug, Default)]
pub(super) struct Ready {
    levels: [VecDeque<QueuedMessage>; LEVELS],
    len: usize,
    bytes: u64,
}

impl Ready {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn bytes(&self) -> u64 {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn push_back(&mut self, m: QueuedMessage) {
        self.account_in(&m);
        self.level(m.priority).push_back(m);
    }

    /// Puts a message back ahead of everything of its priority.
    pub(super) fn push_front(&mut self, m: QueuedMessage) {
        self.account_in(&m);
        self.level(m.priority).push_front(m);
    }

    /// The next message to deliver: highest priority, oldest first.
    pub(super) fn pop_next(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.account_out(&m);
        Some(m)
    }

    /// The message to drop when full: lowest priority, oldest first.
    pub(super) fn pop_oldest_lowest(&mut self) -> Option<QueuedMessage> {
        let m = self.levels.iter_mut().find_map(|l| l.pop_front())?;
        self.account_out(&m);
        Some(m)
    }

    /// Takes every ready message (queue deletion).
    pub(super) fn drain_all(&mut self) -> Vec<QueuedMessage> {
        self.len = 0;
        self.bytes = 0;
        self.levels.iter_mut().flat_map(|l| l.drain(..)).collect()
    }

    /// Takes the ready messages `take` selects, keeping the order of the
    /// others.
    pub(super) fn take_where(
        &mut self,
        mut take: impl FnMut(&QueuedMessage) -> bool,
    ) -> Vec<QueuedMessage> {
        let mut taken = Vec::new();
        for level in &mut self.levels {
            let (out, kept): (VecDeque<_>, VecDeque<_>) = level.drain(..).partition(&mut take);
            *level = kept;
            taken.extend(out);
        }
        for m in &taken {
            self.len -= 1;
            self.bytes -= m.body_len();
        }
        taken
    }

    fn level(&mut self, priority: u8) -> &mut VecDeque<QueuedMessage> {
        let i = (priority as usize).min(LEVELS - 1);
        &mut self.levels[i]
    }

    fn account_in(&mut self, m: &QueuedMessage) {
        self.len += 1;
        self.bytes += m.body_len();
    }

    fn account_out(&mut self, m: &QueuedMessage) {
        self.len -= 1;
        self.bytes -= m.body_len();
    }
}

/// The `priority` header as a level, if valid.
pub(super) fn priority_of(message: &Message) -> u8 {
    message
        .headers
        .get("priority")
        .and_then(|p| p.trim().parse::<u8>().ok())
        .filter(|p| (*p as usize) < LEVELS)
        .unwrap_or(DEFAULT_PRIORITY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytestring::ByteString;
    use stompede_codec::Headers;

    fn queued(body: &'static str, priority: u8) -> QueuedMessage {
        QueuedMessage {
            message: Arc::new(Message::new(
                ByteString::from_static("/queue/p"),
                Headers::new(),
                bytes::Bytes::from_static(body.as_bytes()),
            )),
            seq: None,
            deliveries: 0,
            redelivered: false,
            expires_at: None,
            priority,
            origin: None,
        }
    }

    #[test]
    fn higher_priority_first_fifo_within_a_priority() {
        let mut r = Ready::default();
        r.push_back(queued("low", 1));
        r.push_back(queued("high1", 9));
        r.push_back(queued("high2", 9));
        r.push_front(queued("mid", 4));
        assert_eq!((r.len(), r.bytes()), (4, 3 + 5 + 5 + 3));
        let order: Vec<_> = std::iter::from_fn(|| r.pop_next())
            .map(|m| m.message.body.clone())
            .collect();
        assert_eq!(order, vec!["high1", "high2", "mid", "low"]);
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn overflow_drops_the_lowest_priority_first() {
        let mut r = Ready::default();
        r.push_back(queued("high", 9));
        r.push_back(queued("low", 0));
        assert_eq!(&r.pop_oldest_lowest().unwrap().message.body[..], b"low");
    }
}
