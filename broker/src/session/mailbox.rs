//! A session's [`Mailbox`](stompede_plugin::Mailbox) implementation: plugins
//! push MESSAGEs and RECEIPTs into the session's outbox from any task.

use super::outbox::{Delivery, Outbound, Outbox, PushOutcome};
use bytestring::ByteString;
use std::sync::Arc;
use stompede_codec::Headers;
use stompede_plugin::{Deliver, Message};

/// Pushes plugin output into one session's outbox.
pub(crate) struct SessionMailbox {
    outbox: Arc<Outbox>,
}

impl SessionMailbox {
    pub(crate) fn new(outbox: Arc<Outbox>) -> SessionMailbox {
        SessionMailbox { outbox }
    }
}

fn delivery(subscription: ByteString, message: Arc<Message>) -> Delivery {
    Delivery {
        subscription,
        message,
        queue: None,
        redelivered: false,
    }
}

impl Deliver for SessionMailbox {
    fn deliver(&self, subscription: ByteString, message: Arc<Message>) -> bool {
        self.outbox.push_topic(delivery(subscription, message)) != PushOutcome::Closed
    }

    fn deliver_reliably(&self, subscription: ByteString, message: Arc<Message>) -> bool {
        self.outbox
            .push(Outbound::Reliable(delivery(subscription, message)))
            != PushOutcome::Closed
    }

    fn receipt(&self, receipt_id: ByteString, headers: Headers) -> bool {
        self.outbox.push(Outbound::ReceiptWith {
            receipt_id,
            headers,
        }) != PushOutcome::Closed
    }

    fn is_open(&self) -> bool {
        !self.outbox.is_closed()
    }
}
