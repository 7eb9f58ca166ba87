//! The plugin seam: code that runs inside the broker at the points where a
//! session connects, subscribes, sends and leaves. The chat plugin is one.
//!
//! Hooks run on the session's task, so they must be quick and must not
//! block; a refusal becomes an ERROR frame (and the close the spec asks
//! for).

use bytestring::ByteString;
use std::net::SocketAddr;
use stompede_codec::Headers;

/// Who a hook is about.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The broker's session id (the `session` header of CONNECTED).
    pub session_id: u64,
    /// The authenticated user, if any.
    pub user: Option<ByteString>,
    /// The peer address, when the transport has one.
    pub peer: Option<SocketAddr>,
}

/// A plugin's refusal of a frame. The text becomes the ERROR `message`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Refusal(pub String);

/// Hooks into the broker. Every method has a default that allows.
pub trait Plugin: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;

    /// After authentication, before CONNECTED is sent.
    fn on_connect(&self, _session: &SessionInfo) -> Result<(), Refusal> {
        Ok(())
    }

    /// Before a SUBSCRIBE takes effect.
    fn on_subscribe(&self, _session: &SessionInfo, _destination: &str) -> Result<(), Refusal> {
        Ok(())
    }

    /// Before a SEND is routed (after a transaction commits). The plugin
    /// may add or change the message's headers.
    fn on_send(
        &self,
        _session: &SessionInfo,
        _destination: &str,
        _headers: &mut Headers,
    ) -> Result<(), Refusal> {
        Ok(())
    }

    /// After the session has ended, for whatever reason.
    fn on_disconnect(&self, _session: &SessionInfo) {}
}
