//! A session's subscriptions and the acknowledgement bookkeeping for them.

use crate::router::queue::QueueHandle;
use bytestring::ByteString;
use std::collections::BTreeMap;

/// The SUBSCRIBE `ack` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckMode {
    /// Delivered = acknowledged.
    Auto,
    /// ACK acknowledges this message and every earlier one.
    Client,
    /// ACK acknowledges this message only.
    ClientIndividual,
}

impl AckMode {
    pub(crate) fn parse(value: Option<&str>) -> Option<AckMode> {
        match value {
            None | Some("auto") => Some(AckMode::Auto),
            Some("client") => Some(AckMode::Client),
            Some("client-individual") => Some(AckMode::ClientIndividual),
            Some(_) => None,
        }
    }
}

/// Where a subscription's messages come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// The topic table, under this key.
    Topic { key: ByteString },
    /// A queue actor, as this consumer.
    Queue { queue: QueueHandle, consumer: u64 },
    /// A plugin that owns the destination's prefix.
    Plugin(PluginRef),
}

/// A plugin, shown by name in debug output.
#[derive(Clone)]
pub(crate) struct PluginRef(pub std::sync::Arc<dyn stompede_plugin::Plugin>);

impl std::fmt::Debug for PluginRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

/// A queue delivery written to the client and not yet acknowledged.
#[derive(Debug, Clone)]
pub(crate) struct Unacked {
    pub message_id: ByteString,
    pub tag: u64,
}

/// One SUBSCRIBE.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub ack: AckMode,
    pub source: Source,
    /// Queue deliveries awaiting ACK, by the session's ack id (ascending =
    /// delivery order, so `client` mode acks a prefix).
    pub unacked: BTreeMap<u64, Unacked>,
}

impl Subscription {
    /// Takes the deliveries an ACK/NACK of `ack_id` covers, as
    /// `(ack id, queue tag)`: just that one in `client-individual` mode, it
    /// and every earlier one in `client` mode.
    pub(crate) fn take_acked(&mut self, ack_id: u64) -> Vec<(u64, u64)> {
        match self.ack {
            AckMode::Client => {
                let rest = self.unacked.split_off(&(ack_id + 1));
                let acked = std::mem::replace(&mut self.unacked, rest);
                acked.into_iter().map(|(id, u)| (id, u.tag)).collect()
            }
            _ => self
                .unacked
                .remove(&ack_id)
                .map(|u| (ack_id, u.tag))
                .into_iter()
                .collect(),
        }
    }

    /// The ack id of the unacknowledged delivery of `message_id`.
    pub(crate) fn ack_id_of(&self, message_id: &str) -> Option<u64> {
        self.unacked
            .iter()
            .find(|(_, u)| u.message_id == message_id)
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(ack: AckMode) -> Subscription {
        let mut unacked = BTreeMap::new();
        for (id, tag) in [(1u64, 10u64), (2, 11), (5, 12)] {
            unacked.insert(
                id,
                Unacked {
                    message_id: ByteString::from(format!("m{id}")),
                    tag,
                },
            );
        }
        Subscription {
            ack,
            source: Source::Topic {
                key: ByteString::from_static("/queue/q"),
            },
            unacked,
        }
    }

    #[test]
    fn client_mode_acks_cumulatively() {
        let mut s = sub(AckMode::Client);
        assert_eq!(s.take_acked(2), vec![(1, 10), (2, 11)]);
        assert_eq!(s.unacked.len(), 1);
    }

    #[test]
    fn individual_mode_acks_one() {
        let mut s = sub(AckMode::ClientIndividual);
        assert_eq!(s.take_acked(2), vec![(2, 11)]);
        assert_eq!(s.take_acked(2), Vec::<(u64, u64)>::new());
        assert_eq!(s.ack_id_of("m5"), Some(5));
    }
}
