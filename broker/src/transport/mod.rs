//! Transports: TCP and WebSocket both carry bytes into the same STOMP
//! decoder; only the framing of outbound bytes differs.

pub(crate) mod tcp;
pub(crate) mod ws;

use bytes::BytesMut;
use std::future::Future;
use std::io;

/// Listener-side state shared by the accept loops: TLS material and
/// per-address connection counts.
#[derive(Debug, Default)]
pub(crate) struct NetState {}

impl NetState {
    /// Builds the state `config` asks for.
    pub(crate) fn from_config(_config: &crate::config::Config) -> io::Result<NetState> {
        Ok(NetState {})
    }
}

/// Encoded frames waiting to be written, with the end offset of each frame
/// (WebSocket sends one frame per message).
#[derive(Debug, Default)]
pub(crate) struct OutBuf {
    /// The encoded bytes.
    pub bytes: BytesMut,
    /// End offsets of complete frames (heart-beats count as frames).
    pub frame_ends: Vec<usize>,
}

impl OutBuf {
    /// Marks the bytes written so far as one complete frame.
    pub(crate) fn end_frame(&mut self) {
        self.frame_ends.push(self.bytes.len());
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Forgets everything (after a write).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.frame_ends.clear();
    }
}

/// A connection as the session sees it.
pub(crate) trait Transport: Send + 'static {
    /// Appends received bytes to `buf`; `Ok(0)` means the peer closed.
    /// Cancel-safe: nothing is lost if the future is dropped.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<usize>> + Send;

    /// Writes every frame in `out` and flushes; `out` is cleared.
    fn write(&mut self, out: &mut OutBuf) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the connection politely (TCP FIN, WebSocket close frame).
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// A short name for logs (`tcp`, `ws`).
    fn kind(&self) -> &'static str;

    /// The user name a verified TLS client certificate carries, if any.
    fn tls_identity(&self) -> Option<&str> {
        None
    }
}
