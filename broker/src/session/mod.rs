//! One task per connection: the STOMP state machine.
//!
//! The session reads bytes from its [`Transport`], decodes frames, handles
//! each, and writes what it owes (RECEIPTs, ERRORs, MESSAGEs) in one batch
//! per loop turn. Deliveries reach it through its bounded [`Outbox`].

mod commands;
pub(crate) mod frames;
mod mailbox;
pub(crate) mod outbox;
mod rate;
mod subscription;

use crate::broker::Shared;
use crate::router::queue::{QueueCommand, QueueHandle};
use crate::transport::{OutBuf, Transport};
use bytes::BytesMut;
use bytestring::ByteString;
use outbox::{Outbound, Outbox};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stompede_codec::{encode_frame, encode_heartbeat, Command, Frame, Item, StompCodec, Version};
use subscription::{AckMode, Source, Subscription, Unacked};
use tokio::time::Instant;
use tokio_util::codec::Decoder;
use tracing::Instrument;

/// How long a DISCONNECT waits for RECEIPTs still owed (stores that stall
/// must not keep a closing connection forever).
const DISCONNECT_RECEIPT_WAIT: Duration = Duration::from_secs(10);

/// How much of an outbound frame a frame trace shows.
const TRACE_PREVIEW_BYTES: usize = 512;

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for CONNECT or STOMP.
    AwaitConnect,
    /// CONNECTED was sent.
    Connected,
    /// DISCONNECT arrived while RECEIPTs for earlier frames were still
    /// owed: wait for them (reading nothing more), then send its RECEIPT.
    Disconnecting,
    /// An ERROR or DISCONNECT ended the session; flush and close.
    Closing,
}

/// An operation deferred to COMMIT.
#[derive(Debug)]
enum TxOp {
    Send(Frame),
    Ack(Frame),
    Nack(Frame),
}

/// Heart-beat timing negotiated at CONNECT.
#[derive(Debug, Clone, Copy, Default)]
struct HeartBeat {
    /// Send an EOL when nothing was written for this long.
    send_every: Option<Duration>,
    /// Close the connection after this much silence.
    silence_limit: Option<Duration>,
}

/// Queue tags to acknowledge, by consumer.
type AcksByConsumer = HashMap<u64, (QueueHandle, Vec<u64>)>;

/// Tells each queue which of its deliveries are acknowledged.
fn send_acks(acks: &mut AcksByConsumer) {
    for (consumer, (queue, tags)) in acks.drain() {
        queue.send_now(QueueCommand::Ack { consumer, tags });
    }
}

/// Runs one connection to its end.
pub(crate) async fn run<T: Transport>(shared: Arc<Shared>, transport: T, peer: Option<SocketAddr>) {
    let id = shared.next_session_id();
    let span = tracing::info_span!(
        "session",
        id,
        kind = transport.kind(),
        peer = ?peer,
        user = tracing::field::Empty
    );
    let session = Session::new(id, shared, transport, peer);
    session.run().instrument(span).await;
}

struct Session<T> {
    id: u64,
    shared: Arc<Shared>,
    transport: T,
    peer: Option<SocketAddr>,
    codec: StompCodec,
    read_buf: BytesMut,
    out: OutBuf,
    outbox: Arc<Outbox>,
    /// The outbox as plugins reach it.
    mailbox: stompede_plugin::Mailbox,
    pending: VecDeque<Outbound>,
    state: State,
    version: Version,
    /// Who the connection is (anonymous until CONNECT).
    principal: crate::auth::Principal,
    /// When the credentials expire (a JWT's `exp`): the session ends then.
    expires_at: Option<Instant>,
    /// Inbound frame and byte budgets.
    rate: rate::InboundRate,
    /// How many plugins accepted this session's CONNECT (they, and only
    /// they, are told when it ends).
    plugins_connected: usize,
    /// The CONNECT `client-id` (names durable subscriptions).
    client_id: Option<ByteString>,
    subscriptions: HashMap<ByteString, Subscription>,
    /// Which subscription each outstanding ack id belongs to.
    ack_owner: HashMap<u64, ByteString>,
    /// ACKed queue tags not yet sent to their queue, by consumer: sent once
    /// per batch of frames instead of once per ACK.
    pending_acks: AcksByConsumer,
    /// Auto-mode queue deliveries in the write buffer: acknowledged only
    /// once the write succeeds, so a failed write gets them redelivered.
    unwritten_auto_acks: AcksByConsumer,
    next_ack_id: u64,
    transactions: HashMap<ByteString, Vec<TxOp>>,
    /// Temp queue name → its topic-table key (`/reply-queue/...`).
    temp_queues: HashMap<ByteString, ByteString>,
    heartbeat: HeartBeat,
    /// RECEIPTs that will arrive through the outbox (queue publishes).
    receipts_pending: usize,
    /// The RECEIPT id of a DISCONNECT waiting for `receipts_pending`.
    disconnect_receipt: Option<ByteString>,
    /// This session in the broker's registry, once connected.
    registered: Option<Arc<crate::registry::Connection>>,
    /// When a waiting DISCONNECT gives up and closes anyway.
    disconnect_deadline: Option<Instant>,
    last_read: Instant,
    last_write: Instant,
}

impl<T: Transport> Session<T> {
    fn new(id: u64, shared: Arc<Shared>, transport: T, peer: Option<SocketAddr>) -> Self {
        let config = &shared.config;
        let outbox = Arc::new(Outbox::new(
            config.delivery.outbox_capacity,
            config.delivery.slow_consumer,
            Arc::clone(&shared.stats),
        ));
        let limits = shared.access.policy().limits.clone();
        let codec = StompCodec::new(limits.codec_limits());
        let now = Instant::now();
        Session {
            id,
            shared,
            transport,
            peer,
            codec,
            read_buf: BytesMut::new(),
            out: OutBuf::default(),
            mailbox: stompede_plugin::Mailbox::new(Arc::new(mailbox::SessionMailbox::new(
                Arc::clone(&outbox),
            ))),
            outbox,
            pending: VecDeque::new(),
            state: State::AwaitConnect,
            version: Version::V1_2,
            principal: crate::auth::Principal::default(),
            expires_at: None,
            plugins_connected: 0,
            rate: rate::InboundRate::new(limits.max_frames_per_second, limits.max_bytes_per_second),
            client_id: None,
            subscriptions: HashMap::new(),
            ack_owner: HashMap::new(),
            pending_acks: HashMap::new(),
            unwritten_auto_acks: HashMap::new(),
            next_ack_id: 1,
            transactions: HashMap::new(),
            temp_queues: HashMap::new(),
            heartbeat: HeartBeat::default(),
            receipts_pending: 0,
            disconnect_receipt: None,
            disconnect_deadline: None,
            registered: None,
            last_read: now,
            last_write: now,
        }
    }

    async fn run(mut self) {
        let connect_timeout = self.shared.access.policy().limits.connect_timeout();
        let connect_deadline = Instant::now() + connect_timeout;
        let shutdown = self.shared.shutdown.clone();
        let outbox = Arc::clone(&self.outbox);
        // One timer for heart-beats and timeouts. Activity only moves those
        // deadlines later, so the timer is re-armed only when it fires (and
        // `on_timer` re-checks) or when CONNECT changes the intervals.
        let timer = tokio::time::sleep_until(self.next_timer(connect_deadline));
        tokio::pin!(timer);
        loop {
            let was_awaiting_connect = self.state == State::AwaitConnect;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.drain_outbox();
                    self.state = State::Closing;
                }
                _ = outbox.ready() => self.drain_outbox(),
                read = self.transport.read(&mut self.read_buf), if self.state != State::Disconnecting => match read {
                    Ok(0) => break,
                    Ok(n) => {
                        self.last_read = Instant::now();
                        match self.rate.bytes(n) {
                            Ok(()) => self.decode_and_handle().await,
                            Err(overrun) => self.fail("rate limit exceeded", &overrun.describe(), None),
                        }
                        // Deliveries our own frames produced (a SEND to a
                        // topic we subscribe to) go out in the same write.
                        self.drain_outbox();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        // The transport refused what it read (a WebSocket
                        // message over the size limit): say so, then close.
                        let detail = format!("The connection sent more than a limit allows: {e}.");
                        self.fail("message too large", &detail, None);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "read failed");
                        break;
                    }
                },
                _ = &mut timer => {
                    if !self.on_timer(connect_deadline) {
                        break;
                    }
                    timer.as_mut().reset(self.next_timer(connect_deadline));
                }
            }
            if was_awaiting_connect && self.state == State::Connected {
                timer.as_mut().reset(self.next_timer(connect_deadline));
            }
            if !self.out.is_empty() {
                if let Err(e) = self.flush().await {
                    tracing::debug!(error = %e, "write failed");
                    break;
                }
                send_acks(&mut self.unwritten_auto_acks);
            }
            if self.state == State::Closing {
                self.transport.close().await;
                break;
            }
        }
        self.cleanup();
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let shutdown = self.shared.shutdown.clone();
        let write = self.transport.write(&mut self.out);
        // A peer that stops reading must not hold the session forever once
        // the broker is shutting down.
        tokio::select! {
            r = write => r?,
            _ = async {
                shutdown.cancelled().await;
                tokio::time::sleep(self.shared.config.shutdown_grace()).await;
            } => return Err(std::io::Error::other("shutdown grace expired")),
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// The next instant a timer needs attention.
    fn next_timer(&self, connect_deadline: Instant) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let mut at = far;
        if self.state == State::AwaitConnect {
            at = at.min(connect_deadline);
        }
        if let Some(every) = self.heartbeat.send_every {
            at = at.min(self.last_write + every);
        }
        if let Some(limit) = self.heartbeat.silence_limit {
            at = at.min(self.last_read + limit);
        }
        if let Some(deadline) = self.disconnect_deadline {
            at = at.min(deadline);
        }
        if let Some(expiry) = self.expires_at {
            at = at.min(expiry);
        }
        at
    }

    /// Heart-beats and timeouts; returns false when the session must end.
    fn on_timer(&mut self, connect_deadline: Instant) -> bool {
        let now = Instant::now();
        if self.state == State::Disconnecting && self.disconnect_deadline.is_some_and(|d| now >= d)
        {
            tracing::warn!(
                owed = self.receipts_pending,
                "closing without the RECEIPTs still owed"
            );
            self.state = State::Closing;
            return true;
        }
        if self.state == State::AwaitConnect && now >= connect_deadline {
            tracing::debug!("no CONNECT within the timeout");
            self.fail(
                "connect timeout",
                "no CONNECT frame was received in time",
                None,
            );
            return true;
        }
        if self.state == State::Connected && self.expires_at.is_some_and(|at| now >= at) {
            tracing::info!("credentials expired");
            self.fail(
                "token expired",
                "The token this connection logged in with has expired; connect again with a fresh one.",
                None,
            );
            return true;
        }
        if let Some(limit) = self.heartbeat.silence_limit {
            if now >= self.last_read + limit {
                tracing::info!(silence_ms = limit.as_millis() as u64, "heart-beat timeout");
                return false;
            }
        }
        if let Some(every) = self.heartbeat.send_every {
            if now >= self.last_write + every && self.out.is_empty() {
                encode_heartbeat(&mut self.out.bytes);
                self.out.end_frame();
            }
        }
        true
    }

    async fn decode_and_handle(&mut self) {
        while matches!(self.state, State::AwaitConnect | State::Connected) {
            let before = self.read_buf.len();
            match self.codec.decode(&mut self.read_buf) {
                Ok(None) => break,
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(frame))) => {
                    self.count_frame_in(&frame, before - self.read_buf.len());
                    match self.rate.frame() {
                        Ok(()) => self.handle(frame).await,
                        Err(overrun) => self.fail("rate limit exceeded", &overrun.describe(), None),
                    }
                }
                Err(e) => {
                    let detail = format!("The frame could not be decoded: {e}.");
                    self.fail(&e.to_string(), &detail, None);
                }
            }
        }
        self.flush_acks();
        if let Some(entry) = &self.registered {
            entry.subscriptions.store(
                self.subscriptions.len(),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }

    /// Sends the ACKs gathered in this batch to their queues.
    fn flush_acks(&mut self) {
        send_acks(&mut self.pending_acks);
    }

    /// Moves ready deliveries from the outbox to the write buffer.
    fn drain_outbox(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        self.outbox.drain_into(&mut pending);
        let now = std::time::Instant::now();
        for item in pending.drain(..) {
            match item {
                Outbound::Delivery(d) | Outbound::Reliable(d) => self.write_delivery(d, now),
                Outbound::ReceiptWith {
                    receipt_id,
                    headers,
                } => {
                    self.receipts_pending = self.receipts_pending.saturating_sub(1);
                    frames::receipt_with_headers(
                        &receipt_id,
                        &headers,
                        self.version,
                        &mut self.out.bytes,
                    );
                    self.end_frame(Command::Receipt);
                }
                Outbound::Receipt(id) => {
                    self.receipts_pending = self.receipts_pending.saturating_sub(1);
                    self.write_receipt_id(&id);
                }
                Outbound::Fatal {
                    message,
                    receipt_id,
                } => {
                    let receipt_id = receipt_id.map(|r| r.to_string());
                    self.fail(&message, "", receipt_id.as_deref());
                    break;
                }
            }
        }
        self.pending = pending;
        if self.state == State::Disconnecting && self.receipts_pending == 0 {
            self.finish_disconnect();
        }
    }

    /// DISCONNECT: close now, or once the RECEIPTs still owed are written.
    pub(super) fn begin_disconnect(&mut self, receipt: Option<ByteString>) {
        self.disconnect_receipt = receipt;
        if self.receipts_pending == 0 {
            self.finish_disconnect();
        } else {
            self.state = State::Disconnecting;
            self.disconnect_deadline = Some(Instant::now() + DISCONNECT_RECEIPT_WAIT);
        }
    }

    fn finish_disconnect(&mut self) {
        if let Some(id) = self.disconnect_receipt.take() {
            self.write_receipt_id(&id);
        }
        self.state = State::Closing;
    }

    /// Writes one MESSAGE; `now` (read once per drained batch, not per
    /// message) dates its publish-to-deliver latency.
    fn write_delivery(&mut self, d: outbox::Delivery, now: std::time::Instant) {
        if self.state == State::Closing {
            return;
        }
        let Some(sub) = self.subscriptions.get_mut(&d.subscription) else {
            // Unsubscribed meanwhile: the queue actor already took back its
            // unacknowledged deliveries, and topic messages just go.
            return;
        };
        let mut ack_header = None;
        if let (Some(tag), Source::Queue { queue, consumer }) = (d.queue, &sub.source) {
            if tag.consumer != *consumer {
                return;
            }
            if sub.ack == AckMode::Auto {
                self.unwritten_auto_acks
                    .entry(*consumer)
                    .or_insert_with(|| (queue.clone(), Vec::new()))
                    .1
                    .push(tag.tag);
            } else {
                let ack_id = self.next_ack_id;
                self.next_ack_id += 1;
                sub.unacked.insert(
                    ack_id,
                    Unacked {
                        message_id: d.message.message_id.clone(),
                        tag: tag.tag,
                    },
                );
                self.ack_owner.insert(ack_id, d.subscription.clone());
                ack_header = Some(ack_id);
            }
        } else if sub.ack != AckMode::Auto {
            // Topic messages are not redelivered; their ack id is only
            // there so clients can ACK them as the spec says.
            ack_header = Some(0);
        }
        let ack_text = match (ack_header, self.version) {
            (Some(id), Version::V1_2) => Some(id.to_string()),
            _ => None,
        };
        d.message.encode_delivery(
            self.version,
            &d.subscription,
            ack_text.as_deref(),
            d.redelivered,
            &mut self.out.bytes,
        );
        self.end_frame(Command::Message);
        let kind = match d.queue {
            Some(_) => crate::stats::DestinationKind::Queue,
            None => crate::stats::DestinationKind::Topic,
        };
        self.shared.stats.delivered(kind);
        self.shared
            .stats
            .observe_delivery_latency(now.saturating_duration_since(d.message.published_at()));
    }

    fn count_frame_in(&self, frame: &Frame, bytes: usize) {
        self.shared.stats.frame_in(frame.command, bytes);
        if let Some(c) = &self.registered {
            c.frame_in(bytes);
            if c.is_traced() {
                tracing::info!(
                    target: "stompede::trace",
                    command = %frame.command,
                    bytes,
                    headers = ?frame.headers,
                    "frame in"
                );
            }
        }
    }

    fn end_frame(&mut self, command: Command) {
        let start = self.out.frame_ends.last().copied().unwrap_or(0);
        self.out.end_frame();
        let bytes = self.out.bytes.len() - start;
        self.shared.stats.frame_out(command, bytes);
        if let Some(c) = &self.registered {
            c.frame_out(bytes);
            if c.is_traced() {
                let end = self.out.bytes.len().min(start + TRACE_PREVIEW_BYTES);
                let preview = String::from_utf8_lossy(&self.out.bytes[start..end]);
                tracing::info!(
                    target: "stompede::trace",
                    %command,
                    bytes,
                    frame = %preview.escape_debug(),
                    "frame out"
                );
            }
        }
    }

    /// Sends ERROR and moves to Closing: the spec closes after an ERROR.
    fn fail(&mut self, message: &str, detail: &str, receipt_id: Option<&str>) {
        tracing::debug!(message, "closing with ERROR");
        let frame = frames::error(message, detail, receipt_id);
        encode_frame(&frame, self.version, &mut self.out.bytes);
        self.end_frame(Command::Error);
        self.shared.stats.errors_sent.inc();
        self.state = State::Closing;
    }

    fn write_receipt(&mut self, frame: &Frame) {
        if let Some(id) = frame.get("receipt") {
            frames::receipt(id, self.version, &mut self.out.bytes);
            self.end_frame(Command::Receipt);
        }
    }

    fn write_receipt_id(&mut self, id: &str) {
        frames::receipt(id, self.version, &mut self.out.bytes);
        self.end_frame(Command::Receipt);
    }

    /// Who this session is, for plugins.
    fn info(&self) -> stompede_plugin::SessionInfo {
        stompede_plugin::SessionInfo {
            session_id: self.id,
            user: self.principal.user.clone(),
            roles: self.principal.roles.clone(),
            peer: self.peer,
            mailbox: self.mailbox.clone(),
        }
    }

    /// Gives back what subscription `id` held: its topic-table entry, its
    /// queue consumer (whose unacked messages the queue takes back), or its
    /// plugin subscription.
    fn release(&self, id: &ByteString, source: Source) {
        match source {
            Source::Topic { key } => self.shared.router.topics.unsubscribe(&key, self.id, id),
            Source::Queue { queue, consumer } => {
                queue.send_now(QueueCommand::Unsubscribe { consumer })
            }
            Source::Plugin(plugin) => plugin.0.on_owned_unsubscribe(&self.info(), id),
        }
    }

    /// Releases everything the session held in the router.
    fn cleanup(&mut self) {
        self.outbox.close();
        if self.registered.take().is_some() {
            self.shared.sessions.remove(self.id);
        }
        self.flush_acks();
        if self.plugins_connected > 0 {
            let info = self.info();
            for plugin in &self.shared.plugins.all[..self.plugins_connected] {
                plugin.on_disconnect(&info);
            }
        }
        let subscriptions: Vec<_> = self.subscriptions.drain().collect();
        for (id, sub) in subscriptions {
            self.release(&id, sub.source);
        }
        self.transactions.clear();
        tracing::debug!("session closed");
    }
}
