//! The routed message: shared by every subscriber it reaches, with its
//! MESSAGE header block encoded once per protocol version.

use bytes::{BufMut, Bytes, BytesMut};
use bytestring::ByteString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;
use stompede_codec::{encode_header, Headers, Version};

/// Headers a client may not set on SEND: the broker owns them on MESSAGE.
pub const RESERVED_SEND_HEADERS: &[&str] = &[
    "destination",
    "message-id",
    "subscription",
    "ack",
    "content-length",
    "receipt",
    "transaction",
    "redelivered",
];

/// A message as the router sees it. Immutable once built; shared through
/// `Arc` by every delivery.
#[derive(Debug)]
pub struct Message {
    /// The destination written in the MESSAGE frame.
    pub destination: ByteString,
    /// The broker-assigned id.
    pub message_id: ByteString,
    /// User headers from the SEND (reserved headers removed).
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
    /// Per-version encoding of the header lines shared by all deliveries
    /// (everything but `subscription`, `ack` and `redelivered`), ending with
    /// the blank line.
    encoded_headers: [OnceLock<Bytes>; 3],
    /// When the broker accepted it (monotonic), for the publish-to-deliver
    /// latency.
    published_at: Instant,
}

static NEXT_MESSAGE_ID: AtomicU64 = AtomicU64::new(1);

impl Message {
    /// Builds a message with a fresh broker-wide id.
    pub fn new(destination: ByteString, headers: Headers, body: Bytes) -> Message {
        let n = NEXT_MESSAGE_ID.fetch_add(1, Ordering::Relaxed);
        Message {
            destination,
            message_id: ByteString::from(format!("m-{n}")),
            headers,
            body,
            encoded_headers: Default::default(),
            published_at: Instant::now(),
        }
    }

    /// A message read back from the store, with its original id.
    pub fn restored(
        destination: ByteString,
        message_id: ByteString,
        headers: Headers,
        body: Bytes,
    ) -> Message {
        Message {
            destination,
            message_id,
            headers,
            body,
            encoded_headers: Default::default(),
            published_at: Instant::now(),
        }
    }

    /// Builds a message from a SEND's headers, dropping the reserved ones.
    pub fn from_send(destination: ByteString, send_headers: &Headers, body: Bytes) -> Message {
        let mut headers = Headers::with_capacity(send_headers.len());
        for (name, value) in send_headers.iter_shared() {
            if !RESERVED_SEND_HEADERS.contains(&&**name) {
                headers.push(name.clone(), value.clone());
            }
        }
        Message::new(destination, headers, body)
    }

    /// A copy of this message under another destination (same id, headers
    /// and body; the body is shared, not copied).
    pub fn with_destination(&self, destination: ByteString) -> Message {
        Message {
            destination,
            message_id: self.message_id.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            encoded_headers: Default::default(),
            published_at: self.published_at,
        }
    }

    /// When the broker built this message from a SEND (monotonic clock);
    /// for a message read back from the store, when it was read back; a
    /// copy under another destination keeps its original's.
    pub fn published_at(&self) -> Instant {
        self.published_at
    }

    /// The shared header block for `version`.
    fn header_block(&self, version: Version) -> &Bytes {
        let slot = match version {
            Version::V1_0 => 0,
            Version::V1_1 => 1,
            Version::V1_2 => 2,
        };
        self.encoded_headers[slot].get_or_init(|| {
            let mut buf = BytesMut::with_capacity(64 + self.headers.len() * 32);
            encode_header("destination", &self.destination, version, true, &mut buf);
            encode_header("message-id", &self.message_id, version, true, &mut buf);
            for (name, value) in self.headers.iter() {
                encode_header(name, value, version, true, &mut buf);
            }
            if !self.body.is_empty() {
                let length = self.body.len().to_string();
                encode_header("content-length", &length, version, true, &mut buf);
            }
            buf.put_u8(b'\n');
            buf.freeze()
        })
    }

    /// Writes this message as a MESSAGE frame for one subscription.
    pub fn encode_delivery(
        &self,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
        dst: &mut BytesMut,
    ) {
        let block = self.header_block(version);
        dst.reserve(block.len() + self.body.len() + subscription.len() + 48);
        dst.put_slice(b"MESSAGE\n");
        encode_header("subscription", subscription, version, true, dst);
        if let Some(ack) = ack {
            encode_header("ack", ack, version, true, dst);
        }
        if redelivered {
            dst.put_slice(b"redelivered:true\n");
        }
        dst.put_slice(block);
        dst.put_slice(&self.body);
        dst.put_u8(0);
    }
}
