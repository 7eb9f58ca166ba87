//! # The Stompede plugin interface
//!
//! Code that runs inside the broker. A plugin can
//!
//! - **watch and veto** what sessions do: hooks on connect, subscribe,
//!   send and disconnect ([`Plugin::on_connect`] …);
//! - **own destination prefixes** ([`Plugin::owned_prefixes`], e.g.
//!   `/room/`): SENDs and SUBSCRIBEs to them go to the plugin instead of the
//!   router, and the plugin answers through the session's [`Mailbox`] —
//!   MESSAGEs on the subscription, RECEIPTs with extra headers — from any
//!   task, whenever it is ready;
//! - **use the broker** through [`Services`]: publish to ordinary
//!   destinations, reach a user's sessions, find its data directory.
//!
//! This crate has no dependency on the broker itself, so a plugin crate and
//! the broker binary that includes it do not form a cycle.
//!
//! Hooks run on the session's task: they must be quick and must not block.
//! Slow work (storage, fan-out) belongs on the plugin's own tasks, which
//! answer through the [`Mailbox`].

mod log;
mod message;

pub use log::{AppendFuture, ApplyFuture, LogPosition, LogRecord, ReplicatedLog};
pub use message::{Message, RESERVED_SEND_HEADERS};

use bytes::Bytes;
use bytestring::ByteString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use stompede_codec::Headers;

/// Who a hook is about.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The broker's session id (the `session` header of CONNECTED).
    pub session_id: u64,
    /// The authenticated user, if any.
    pub user: Option<ByteString>,
    /// The user's roles (from the users file or a JWT).
    pub roles: Vec<String>,
    /// The peer address, when the transport has one.
    pub peer: Option<SocketAddr>,
    /// Reaches this session from any task.
    pub mailbox: Mailbox,
}

/// A plugin's refusal of a frame. A hard refusal becomes an ERROR frame
/// and the close the specification asks for; a soft one keeps the
/// connection: a RECEIPT with an `x-error` header (if the frame asked for
/// one) and, for a SUBSCRIBE, one MESSAGE with `x-event:denied`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Refusal {
    /// The ERROR `message` header, or the `x-error` text.
    pub message: String,
    /// Whether the connection is kept.
    pub soft: bool,
}

impl Refusal {
    /// A refusal that ends the connection (ERROR, then close).
    pub fn new(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            soft: false,
        }
    }

    /// A refusal that keeps the connection.
    pub fn soft(message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            soft: true,
        }
    }
}

/// A SEND to a destination a plugin owns.
#[derive(Debug, Clone)]
pub struct OwnedSend {
    /// The `destination` header.
    pub destination: ByteString,
    /// Every header of the SEND, as the client sent it.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
    /// The `receipt` header, if the client asked for one.
    pub receipt: Option<ByteString>,
}

/// A SUBSCRIBE to a destination a plugin owns.
#[derive(Debug, Clone)]
pub struct OwnedSubscribe {
    /// The subscription id: MESSAGEs for it go through
    /// [`Mailbox::deliver`] with this id.
    pub id: ByteString,
    /// The `destination` header.
    pub destination: ByteString,
    /// Every header of the SUBSCRIBE (e.g. `x-since-seq`).
    pub headers: Headers,
    /// The `receipt` header, if the client asked for one; the broker
    /// writes that RECEIPT when the hook returns, so MESSAGEs the plugin
    /// delivered during the hook come before it.
    pub receipt: Option<ByteString>,
}

/// When the RECEIPT of an owned SEND is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptTiming {
    /// Now: the broker writes it (if the client asked for one).
    Now,
    /// Later: the plugin sends it with [`Mailbox::receipt`] (e.g. once the
    /// message is stored). It must send it, even for a failure (then with
    /// an `x-error` header), or the session's DISCONNECT waits for it.
    Later,
}

/// What the broker does for a mailbox. Implemented by the broker; plugins
/// use [`Mailbox`].
pub trait Deliver: Send + Sync + 'static {
    /// Queues a MESSAGE for `subscription`, subject to the broker's
    /// slow-consumer policy (it may drop the oldest pending message or
    /// disconnect a subscriber that does not keep up). False if the
    /// session is gone.
    fn deliver(&self, subscription: ByteString, message: Arc<Message>) -> bool;

    /// Queues a MESSAGE that must not be dropped (history replay). The
    /// caller bounds how many it queues. False if the session is gone.
    fn deliver_reliably(&self, subscription: ByteString, message: Arc<Message>) -> bool;

    /// Queues a RECEIPT for `receipt_id` carrying `headers`. False if the
    /// session is gone.
    fn receipt(&self, receipt_id: ByteString, headers: Headers) -> bool;

    /// Whether the session is still connected.
    fn is_open(&self) -> bool;
}

/// One session's way in, usable from any task; cheap to clone.
#[derive(Clone)]
pub struct Mailbox(Arc<dyn Deliver>);

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("open", &self.0.is_open())
            .finish()
    }
}

impl Mailbox {
    /// Wraps the broker's implementation.
    pub fn new(inner: Arc<dyn Deliver>) -> Mailbox {
        Mailbox(inner)
    }

    /// See [`Deliver::deliver`].
    pub fn deliver(&self, subscription: ByteString, message: Arc<Message>) -> bool {
        self.0.deliver(subscription, message)
    }

    /// See [`Deliver::deliver_reliably`].
    pub fn deliver_reliably(&self, subscription: ByteString, message: Arc<Message>) -> bool {
        self.0.deliver_reliably(subscription, message)
    }

    /// See [`Deliver::receipt`].
    pub fn receipt(&self, receipt_id: ByteString, headers: Headers) -> bool {
        self.0.receipt(receipt_id, headers)
    }

    /// See [`Deliver::is_open`].
    pub fn is_open(&self) -> bool {
        self.0.is_open()
    }

    /// Whether two mailboxes reach the same session.
    pub fn same_session(&self, other: &Mailbox) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What the broker offers a plugin, from [`Plugin::start`] on.
pub trait Services: Send + Sync + 'static {
    /// Publishes `message` to the destination it names, as a client SEND
    /// would: a topic (`/topic/...`), or a private reply queue — the
    /// `reply-to` of an owned SEND whose client named a `/temp-queue/`
    /// arrives rewritten to the session's `/reply-queue/...` address.
    /// Other destinations are refused with a reason. With `reliable` the
    /// slow-consumer policy may not drop it (replies: the plugin bounds
    /// how many it sends).
    fn publish(&self, message: Message, reliable: bool) -> Result<(), String>;

    /// Delivers `message` to every session of `user` subscribed to
    /// `/user/{tail}` (e.g. `tail = "queue/chat"`). With `reliable` the
    /// slow-consumer policy may not drop it (replies, history pages: the
    /// plugin bounds how many it sends).
    fn deliver_to_user(&self, user: &str, tail: &str, message: Message, reliable: bool);

    /// A directory for the plugin's own files, or `None` when the broker
    /// keeps nothing on disk (in-memory store): then the plugin keeps its
    /// state in memory too.
    fn data_dir(&self, plugin: &str) -> Option<PathBuf>;

    /// In a cluster: the replicated log `name` (the plugin's
    /// [`Plugin::log_name`]). `None` on a single node, and for plugins that
    /// keep no log.
    fn log(&self, _name: &str) -> Option<Arc<dyn ReplicatedLog>> {
        None
    }
}

/// One gauge a plugin reports in the broker's `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    /// The metric name after the `stompede_` prefix (e.g. `chat_rooms`):
    /// lowercase letters, digits and underscores.
    pub name: &'static str,
    /// One line of help text.
    pub help: &'static str,
    /// The value now.
    pub value: u64,
}

/// Hooks into the broker. Every method has a default: allow, own nothing.
pub trait Plugin: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &str;

    /// Called once when the broker starts, after its store is recovered and
    /// before its listeners open. An error stops the broker from starting.
    fn start(&self, _services: Arc<dyn Services>) -> Result<(), String> {
        Ok(())
    }

    /// Destination prefixes this plugin serves itself (e.g. `/room/`).
    fn owned_prefixes(&self) -> Vec<String> {
        Vec::new()
    }

    /// After authentication, before CONNECTED is sent.
    fn on_connect(&self, _session: &SessionInfo) -> Result<(), Refusal> {
        Ok(())
    }

    /// Before a SUBSCRIBE takes effect (every destination, owned or not).
    fn on_subscribe(&self, _session: &SessionInfo, _destination: &str) -> Result<(), Refusal> {
        Ok(())
    }

    /// After a SUBSCRIBE to a destination the broker serves (not an owned
    /// one) took effect: from now on MESSAGEs sent to `subscription`
    /// through the session's mailbox reach the client (e.g. a snapshot for
    /// a user's inbox subscription). Runs before the SUBSCRIBE's RECEIPT.
    fn on_subscribed(
        &self,
        _session: &SessionInfo,
        _destination: &str,
        _subscription: &ByteString,
    ) {
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

    /// A SEND to an owned destination (access rules already checked).
    fn on_owned_send(
        &self,
        _session: &SessionInfo,
        send: OwnedSend,
    ) -> Result<ReceiptTiming, Refusal> {
        Err(Refusal::new(format!(
            "{} does not accept messages",
            send.destination
        )))
    }

    /// A SUBSCRIBE to an owned destination (access rules already checked).
    /// On `Ok` the session keeps the subscription until UNSUBSCRIBE or
    /// disconnect, and delivers what the plugin sends to its id.
    fn on_owned_subscribe(
        &self,
        _session: &SessionInfo,
        subscribe: OwnedSubscribe,
    ) -> Result<(), Refusal> {
        Err(Refusal::new(format!(
            "{} cannot be subscribed to",
            subscribe.destination
        )))
    }

    /// An owned subscription ended (UNSUBSCRIBE or disconnect).
    fn on_owned_unsubscribe(&self, _session: &SessionInfo, _subscription: &ByteString) {}

    /// After the session has ended, for whatever reason. Called exactly
    /// for the sessions whose [`Plugin::on_connect`] this plugin accepted
    /// (not when it, or a plugin before it, refused the CONNECT).
    fn on_disconnect(&self, _session: &SessionInfo) {}

    /// The broker is shutting down, after its sessions closed: release
    /// files and stop tasks.
    fn stop(&self) {}

    /// Gauges for the broker's `/metrics` (e.g. chat rooms, online users),
    /// read at every scrape: cheap to compute.
    fn metrics(&self) -> Vec<Gauge> {
        Vec::new()
    }

    /// The name of the replicated log this plugin keeps its state in when
    /// the broker runs as a cluster (e.g. `chat`; the Kafka topic is then
    /// `{topic_prefix}.plugin.chat`). `None` (the default): the plugin's
    /// state is per node. The log reaches the plugin through
    /// [`Services::log`].
    fn log_name(&self) -> Option<&str> {
        None
    }

    /// Where to resume reading `partition` of the plugin's log when the
    /// broker starts (after [`Plugin::start`]): the first offset the plugin
    /// has not applied yet. `None`: from the oldest record the log keeps.
    fn log_resume_offset(&self, _partition: u32) -> Option<u64> {
        None
    }

    /// One record of the plugin's log, in order within its partition, from
    /// every node including this one. The broker awaits the returned future
    /// before it hands over the next record of the same partition.
    fn on_log_record(&self, _record: LogRecord) -> ApplyFuture<'_> {
        Box::pin(std::future::ready(()))
    }
}
