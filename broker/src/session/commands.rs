//! What the session does with each client frame.

use super::frames;
use super::subscription::{AckMode, PluginRef, Source, Subscription};
use super::{HeartBeat, Session, State, TxOp};
use crate::access::LoginRefusal;
use crate::auth::ConnectRequest;
use crate::config::{AclAction, RefusalMode};
use crate::router::queue::QueueHandle;
use crate::router::queue::{ConsumerSpec, QueueCommand};
use crate::router::topic::TopicSubscriber;
use crate::router::{durable, Route};
use crate::transport::Transport;
use bytestring::ByteString;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use stompede_codec::{encode_frame, Command, Frame, Version};
use stompede_plugin::Message;
use stompede_plugin::{
    OwnedSend, OwnedSubscribe, Plugin, ReceiptTiming, Refusal as PluginRefusal, SessionInfo,
};

/// A refusal of one frame: ERROR, then close — unless it is an ACL denial
/// and `[acl] refusal = "receipt"` keeps the connection.
struct Refusal {
    message: String,
    detail: String,
    /// An authorization denial (may be answered without closing).
    denied: bool,
    /// Answered without closing whatever `[acl] refusal` says (a plugin
    /// asked for it).
    soft: bool,
}

impl Refusal {
    /// A plugin's refusal: a soft one keeps the connection.
    fn from_plugin(r: PluginRefusal) -> Refusal {
        Refusal {
            message: r.message,
            detail: String::new(),
            denied: false,
            soft: r.soft,
        }
    }
}

fn refuse(message: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        detail: String::new(),
        denied: false,
        soft: false,
    }
}

/// Router, queue and store errors refuse the frame with their own text.
impl<E: std::error::Error> From<E> for Refusal {
    fn from(e: E) -> Refusal {
        refuse(e.to_string())
    }
}

type Handled = Result<(), Refusal>;

impl<T: Transport> Session<T> {
    /// Handles one decoded frame.
    pub(super) async fn handle(&mut self, frame: Frame) {
        let command = frame.command;
        let receipt = frame.headers.get_shared("receipt").cloned();
        // A non-fatal SUBSCRIBE denial answers on the subscription.
        let denied_subscription = match command {
            Command::Subscribe => frame.headers.get_shared("destination").map(|destination| {
                let id = frame.headers.get_shared("id").unwrap_or(destination);
                (id.clone(), destination.clone())
            }),
            _ => None,
        };
        let result = match (self.state, command) {
            (State::AwaitConnect, Command::Connect | Command::Stomp) => {
                self.on_connect(&frame).await
            }
            (State::AwaitConnect, other) => {
                Err(refuse(format!("expected CONNECT or STOMP, got {other}")))
            }
            (_, Command::Connect | Command::Stomp) => Err(refuse("already connected")),
            (_, Command::Send) => self.on_send(frame, true).await,
            (_, Command::Subscribe) => self.on_subscribe(&frame).await,
            (_, Command::Unsubscribe) => self.on_unsubscribe(&frame),
            (_, Command::Ack) => self.in_transaction_or(&frame, Self::on_ack),
            (_, Command::Nack) => self.in_transaction_or(&frame, Self::on_nack),
            (_, Command::Begin) => self.on_begin(&frame),
            (_, Command::Commit) => self.on_commit(&frame).await,
            (_, Command::Abort) => self.on_abort(&frame),
            (_, Command::Disconnect) => {
                // Every RECEIPT owed for earlier frames goes out first, then
                // this one, then the close.
                self.begin_disconnect(receipt);
                return;
            }
            (_, server_only) => Err(refuse(format!(
                "{server_only} is a server frame; clients may not send it"
            ))),
        };
        match (result, receipt) {
            // SEND writes its own receipt (possibly after a queue confirms).
            (Ok(()), Some(id)) if command != Command::Send => self.write_receipt_id(&id),
            (Ok(()), _) => {}
            (Err(r), receipt)
                if r.soft
                    || (r.denied
                        && self.shared.access.policy().refusal == RefusalMode::Receipt) =>
            {
                self.refuse_softly(&r, receipt.as_deref(), denied_subscription);
            }
            (Err(r), receipt) => self.fail(&r.message, &r.detail, receipt.as_deref()),
        }
    }

    /// Whether the principal may do `action` on `destination`.
    fn authorize(&self, action: AclAction, destination: &str) -> Handled {
        if self
            .shared
            .access
            .allows(&self.principal, action, destination)
        {
            return Ok(());
        }
        let verb = match action {
            AclAction::Publish => "publish to",
            AclAction::Subscribe => "subscribe to",
            AclAction::Create => "create",
        };
        let who = self.principal.user.as_deref().unwrap_or("anonymous");
        tracing::info!(destination, ?action, "access denied");
        Err(Refusal {
            message: format!("access denied: you may not {verb} {destination}"),
            detail: format!("The access rules do not allow {who} to {verb} {destination}."),
            denied: true,
            soft: false,
        })
    }

    /// Queues are created by their first use; that needs `create` too.
    fn authorize_queue_use(&self, destination: &str) -> Handled {
        // Open rules allow everything: skip the queue registry lookup.
        if self.shared.access.is_open() || self.shared.router.queue_exists(destination) {
            return Ok(());
        }
        self.authorize(AclAction::Create, destination)
    }

    /// A denial that keeps the connection: a RECEIPT with `x-error` if one
    /// was asked for, and for SUBSCRIBE a MESSAGE with `x-event:denied`.
    fn refuse_softly(
        &mut self,
        r: &Refusal,
        receipt: Option<&str>,
        subscription: Option<(ByteString, ByteString)>,
    ) {
        if let Some((id, destination)) = subscription {
            let denied = frames::denied_subscription(&id, &destination, &r.message, self.id);
            encode_frame(&denied, self.version, &mut self.out.bytes);
            self.end_frame(Command::Message);
        }
        if let Some(id) = receipt {
            let mut headers = stompede_codec::Headers::with_capacity(1);
            headers.push("x-error", r.message.replace(['\r', '\n'], " "));
            frames::receipt_with_headers(id, &headers, self.version, &mut self.out.bytes);
            self.end_frame(Command::Receipt);
        }
    }

    async fn on_connect(&mut self, frame: &Frame) -> Handled {
        let version = negotiate_version(frame.get("accept-version")).ok_or_else(|| Refusal {
            message: "unsupported STOMP version".into(),
            detail: format!(
                "This broker speaks STOMP 1.0, 1.1 and 1.2; the client accepts {}.",
                frame.get("accept-version").unwrap_or("")
            ),
            denied: false,
            soft: false,
        })?;
        self.version = version;
        let (client_send, client_receive) = match frame.get("heart-beat") {
            Some(hb) if version != Version::V1_0 => parse_heartbeat(hb)
                .ok_or_else(|| refuse(format!("invalid heart-beat header '{hb}'")))?,
            _ => (0, 0),
        };
        let request = ConnectRequest {
            login: frame.get("login"),
            passcode: frame.get("passcode"),
            headers: &frame.headers,
            peer: self.peer,
            tls_identity: self.transport.tls_identity(),
        };
        let principal = self
            .shared
            .access
            .login(&request)
            .await
            .map_err(|e| match e {
                LoginRefusal::Invalid(e) => Refusal {
                    message: "authentication failed".into(),
                    detail: format!("Authentication failed: {e}."),
                    denied: false,
                    soft: false,
                },
                LoginRefusal::Throttled => {
                    refuse("too many failed logins from your address; try again in a minute")
                }
            })?;
        self.expires_at = principal.expires_at.map(|at| {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default();
            tokio::time::Instant::now() + left
        });
        self.principal = principal;
        if let Some(user) = &self.principal.user {
            tracing::Span::current().record("user", user.as_ref() as &str);
        }
        self.client_id = frame.headers.get_shared("client-id").cloned();
        self.connect_plugins()?;

        let hb = &self.shared.config.heartbeat;
        let (server_send, server_receive) = if version == Version::V1_0 {
            (0, 0)
        } else {
            (hb.send_ms, hb.receive_ms)
        };
        self.heartbeat = HeartBeat {
            send_every: interval(server_send, client_receive),
            silence_limit: interval(client_send, server_receive)
                .map(|d| d.mul_f64(hb.grace_factor.max(1.0))),
        };
        self.codec.set_version(version);

        let mut connected = Frame::new(Command::Connected)
            .header("version", version.as_str())
            .header("server", concat!("stompede/", env!("CARGO_PKG_VERSION")))
            .header("session", format!("session-{}", self.id))
            .header("heart-beat", format!("{server_send},{server_receive}"));
        if let Some(user) = &self.principal.user {
            connected = connected.header("user-name", user.clone());
        }
        encode_frame(&connected, version, &mut self.out.bytes);
        self.end_frame(Command::Connected);
        self.state = State::Connected;
        let entry = Arc::new(crate::registry::Entry {
            user: self.principal.user.as_ref().map(|u| u.to_string()),
            peer: self.peer,
            transport: self.transport.kind(),
            version: version.as_str(),
            subscriptions: Default::default(),
            outbox: Arc::clone(&self.outbox),
        });
        self.registered = Some(self.shared.sessions.insert(self.id, entry));
        tracing::debug!(%version, "connected");
        Ok(())
    }

    /// Runs every plugin's `on_connect` in order; the first refusal wins.
    /// Counts the plugins that accepted: exactly those get `on_disconnect`.
    fn connect_plugins(&mut self) -> Handled {
        if self.shared.plugins.is_empty() {
            return Ok(());
        }
        let info = self.info();
        for plugin in &self.shared.plugins.all {
            // A refused CONNECT always ends the connection.
            plugin.on_connect(&info).map_err(|r| Refusal {
                soft: false,
                ..Refusal::from_plugin(r)
            })?;
            self.plugins_connected += 1;
        }
        Ok(())
    }

    /// Runs a hook of every plugin in order; the first refusal wins.
    fn run_plugins(
        &self,
        mut hook: impl FnMut(&dyn Plugin, &SessionInfo) -> Result<(), PluginRefusal>,
    ) -> Handled {
        if self.shared.plugins.is_empty() {
            return Ok(());
        }
        let info = self.info();
        for plugin in &self.shared.plugins.all {
            hook(plugin.as_ref(), &info).map_err(Refusal::from_plugin)?;
        }
        Ok(())
    }

    /// SEND: route now, or keep for COMMIT when it names a transaction.
    async fn on_send(&mut self, mut frame: Frame, allow_transaction: bool) -> Handled {
        if allow_transaction {
            if let Some(tx) = frame.get("transaction") {
                let ops = self
                    .transactions
                    .get_mut(tx)
                    .ok_or_else(|| refuse(format!("unknown transaction '{tx}'")))?;
                ops.push(TxOp::Send(frame.clone()));
                self.write_receipt(&frame);
                return Ok(());
            }
        }
        let destination = required(&frame, "destination")?;
        self.authorize(AclAction::Publish, &destination)?;
        let headers = &mut frame.headers;
        self.run_plugins(|plugin, info| plugin.on_send(info, &destination, headers))?;
        if let Some(plugin) = self.shared.plugins.owner_of(&destination).cloned() {
            return self.send_to_plugin(&plugin, destination, frame);
        }
        let mut message =
            Message::from_send(destination.clone(), &frame.headers, frame.body.clone());
        self.rewrite_reply_to(&mut message.headers)?;
        let receipt = frame.headers.get_shared("receipt").cloned();
        let receipt_later = self.publish(destination, message, receipt).await?;
        if !receipt_later {
            self.write_receipt(&frame);
        }
        Ok(())
    }

    /// A SEND to a destination a plugin owns: the plugin answers it.
    fn send_to_plugin(
        &mut self,
        plugin: &Arc<dyn Plugin>,
        destination: ByteString,
        mut frame: Frame,
    ) -> Handled {
        self.rewrite_reply_to(&mut frame.headers)?;
        let receipt = frame.headers.get_shared("receipt").cloned();
        let send = OwnedSend {
            destination,
            headers: frame.headers,
            body: frame.body,
            receipt: receipt.clone(),
        };
        let timing = plugin
            .on_owned_send(&self.info(), send)
            .map_err(Refusal::from_plugin)?;
        match (timing, receipt) {
            (ReceiptTiming::Now, Some(id)) => self.write_receipt_id(&id),
            (ReceiptTiming::Later, Some(_)) => self.receipts_pending += 1,
            (_, None) => {}
        }
        Ok(())
    }

    /// A SUBSCRIBE to a destination a plugin owns. What the plugin
    /// delivers during the hook (a history replay) is written before the
    /// SUBSCRIBE's RECEIPT.
    fn subscribe_to_plugin(
        &mut self,
        plugin: Arc<dyn Plugin>,
        frame: &Frame,
        id: ByteString,
        destination: ByteString,
        ack: AckMode,
    ) -> Handled {
        let subscribe = OwnedSubscribe {
            id: id.clone(),
            destination,
            headers: frame.headers.clone(),
            receipt: frame.headers.get_shared("receipt").cloned(),
        };
        plugin
            .on_owned_subscribe(&self.info(), subscribe)
            .map_err(Refusal::from_plugin)?;
        self.subscriptions.insert(
            id,
            Subscription {
                ack,
                source: Source::Plugin(PluginRef(plugin)),
                unacked: BTreeMap::new(),
            },
        );
        self.drain_outbox();
        Ok(())
    }

    /// Routes a message. Returns true when the RECEIPT `receipt` will come
    /// later through the outbox (a queue or the cluster must accept or
    /// store it first).
    async fn publish(
        &mut self,
        destination: ByteString,
        message: Message,
        receipt: Option<ByteString>,
    ) -> Result<bool, Refusal> {
        let route = self.shared.router.route(&destination)?;
        let (key, message) = match route {
            Route::Topic | Route::ReplyQueue => (destination, message),
            Route::TempQueue(name) => {
                // A session's own temp queue lives on its node only.
                let key = self.temp_queue_key(name);
                let message = message.with_destination(key.clone());
                self.shared.router.topics.publish(&key, &Arc::new(message));
                return Ok(false);
            }
            Route::User(rest) => {
                let Some((user, tail)) = rest.split_once('/') else {
                    return Err(refuse(format!(
                        "user destinations are /user/{{login}}/{{destination}}; got '{destination}'"
                    )));
                };
                let key = ByteString::from(format!("/user/{user}/{tail}"));
                let message = message.with_destination(ByteString::from(format!("/user/{tail}")));
                (key, message)
            }
            Route::Queue => {
                self.authorize_queue_use(&destination)?;
                return self.publish_to_queue(destination, message, receipt).await;
            }
        };
        let message = Arc::new(message);
        let Some(bridge) = self.shared.cluster.clone() else {
            self.shared.router.fan_out(&key, &message).await;
            return Ok(false);
        };
        // Through Kafka, so every node delivers in the partition's order;
        // while Kafka is unreachable, delivered here at once (and skipped
        // when it comes back).
        let deliver_now = !bridge.is_reachable();
        let published = bridge
            .publish_topic(&key, &message, deliver_now)
            .map_err(|e| refuse(e.to_string()))?;
        if deliver_now {
            self.shared.router.fan_out(&key, &message).await;
        }
        Ok(self.after_cluster_stored(published, receipt))
    }

    /// A SEND to a queue: to the local queue actor, or in a cluster to the
    /// queue's Kafka partitions (whichever node owns them delivers it).
    async fn publish_to_queue(
        &mut self,
        destination: ByteString,
        message: Message,
        receipt: Option<ByteString>,
    ) -> Result<bool, Refusal> {
        if let Some(bridge) = self.shared.cluster.clone() {
            let published = bridge
                .publish_queue(&destination, &message)
                .map_err(|e| refuse(e.to_string()))?;
            self.shared
                .stats
                .published(crate::stats::DestinationKind::Queue);
            return Ok(self.after_cluster_stored(published, receipt));
        }
        // The session does not wait for the actor: it goes on decoding
        // while the queue accepts (and maybe stores) the message; the
        // RECEIPT or a refusal comes back through the outbox.
        let queue = self.shared.router.queue(&destination);
        let message = Arc::new(message);
        let outbox = Arc::clone(&self.outbox);
        match receipt {
            Some(receipt_id) => {
                queue
                    .publish_with_receipt(message, outbox, receipt_id)
                    .await?;
                self.receipts_pending += 1;
                Ok(true)
            }
            None => {
                queue.publish(message, outbox).await?;
                Ok(false)
            }
        }
    }

    /// Answers a SEND the cluster took once Kafka stored it: the RECEIPT,
    /// or an ERROR if Kafka never did. Returns whether a RECEIPT is due.
    fn after_cluster_stored(
        &mut self,
        published: crate::cluster::Published,
        receipt: Option<ByteString>,
    ) -> bool {
        let outbox = Arc::clone(&self.outbox);
        let receipt_due = receipt.is_some();
        if receipt_due {
            self.receipts_pending += 1;
        }
        tokio::spawn(async move {
            match (published.await, receipt) {
                (Ok(_), Some(id)) => outbox.receipt(id),
                (Ok(_), None) => {}
                (Err(e), id) => outbox.refuse(e, id),
            }
        });
        receipt_due
    }

    /// A `reply-to: /temp-queue/x` becomes the address of this session's
    /// private reply queue, which the session then listens on.
    fn rewrite_reply_to(&mut self, headers: &mut stompede_codec::Headers) -> Handled {
        let Some(reply_to) = headers.get("reply-to") else {
            return Ok(());
        };
        let Some(name) = reply_to.strip_prefix("/temp-queue/") else {
            return Ok(());
        };
        if name.is_empty() {
            return Err(refuse("reply-to /temp-queue/ needs a name"));
        }
        let name = ByteString::from(name.to_owned());
        let key = self.temp_queue_key(&name);
        let implicit_id = ByteString::from(format!("/temp-queue/{name}"));
        if !self.temp_queues.contains_key(&name) {
            self.temp_queues.insert(name.clone(), key.clone());
            if !self.subscriptions.contains_key(&implicit_id) {
                self.add_topic_subscription(implicit_id, key.clone(), AckMode::Auto);
            }
        }
        headers.set("reply-to", key);
        Ok(())
    }

    fn temp_queue_key(&self, name: &str) -> ByteString {
        ByteString::from(format!("/reply-queue/s{}.{name}", self.id))
    }

    /// In a cluster, waits until this node reads the Kafka partition of a
    /// new subscription to `key` (only the first subscriber of a partition
    /// waits, for about one round trip to Kafka).
    async fn await_cluster_reader(&self, key: &str) {
        if let Some(bridge) = &self.shared.cluster {
            bridge.subscribed(key).await;
        }
    }

    fn add_topic_subscription(&mut self, id: ByteString, key: ByteString, ack: AckMode) {
        self.shared.router.topics.subscribe(
            key.clone(),
            Arc::new(TopicSubscriber {
                session_id: self.id,
                subscription: id.clone(),
                outbox: Arc::clone(&self.outbox),
            }),
        );
        self.subscriptions.insert(
            id,
            Subscription {
                ack,
                source: Source::Topic { key },
                unacked: BTreeMap::new(),
            },
        );
    }

    async fn on_subscribe(&mut self, frame: &Frame) -> Handled {
        let destination = required(frame, "destination")?;
        let id = match frame.headers.get_shared("id") {
            Some(id) => id.clone(),
            None if self.version == Version::V1_0 => destination.clone(),
            None => return Err(refuse("SUBSCRIBE requires an id header")),
        };
        if self.subscriptions.contains_key(&id) {
            return Err(refuse(format!("subscription id '{id}' is already in use")));
        }
        let limit = self
            .shared
            .access
            .policy()
            .limits
            .max_subscriptions_per_connection;
        if self.subscriptions.len() >= limit {
            return Err(refuse(format!("too many subscriptions (limit {limit})")));
        }
        let ack = AckMode::parse(frame.get("ack")).ok_or_else(|| {
            refuse(format!(
                "invalid ack mode '{}' (auto, client or client-individual)",
                frame.get("ack").unwrap_or("")
            ))
        })?;
        self.authorize(AclAction::Subscribe, &destination)?;
        self.run_plugins(|plugin, info| plugin.on_subscribe(info, &destination))?;
        if let Some(plugin) = self.shared.plugins.owner_of(&destination).cloned() {
            return self.subscribe_to_plugin(plugin, frame, id, destination, ack);
        }
        self.attach_subscription(frame, id.clone(), &destination, ack)
            .await?;
        if !self.shared.plugins.is_empty() {
            self.run_plugins(|plugin, info| {
                plugin.on_subscribed(info, &destination, &id);
                Ok(())
            })?;
            // What plugins sent to the new subscription goes before the
            // RECEIPT.
            self.drain_outbox();
        }
        Ok(())
    }

    /// Attaches a SUBSCRIBE to the topic table, a queue, or a private
    /// destination, by its route.
    async fn attach_subscription(
        &mut self,
        frame: &Frame,
        id: ByteString,
        destination: &ByteString,
        ack: AckMode,
    ) -> Handled {
        let destination = destination.clone();
        let route = self.shared.router.route(&destination)?;
        match route {
            Route::Topic => match self.durable_subscription_name(frame, &id)? {
                Some(queue_name) => {
                    let (queue, created) =
                        self.shared.router.durable.bind(&destination, &queue_name)?;
                    if let (true, Some(bridge)) = (created, &self.shared.cluster) {
                        bridge.durable_created(&queue_name).await;
                    }
                    self.add_queue_subscription(frame, id, queue, ack).await?;
                }
                None => {
                    self.add_topic_subscription(id, destination.clone(), ack);
                    self.await_cluster_reader(&destination).await;
                }
            },
            Route::TempQueue(name) => {
                let name = ByteString::from(name.to_owned());
                let key = self.temp_queue_key(&name);
                // An explicit subscription replaces the implicit one.
                let implicit = ByteString::from(format!("/temp-queue/{name}"));
                if implicit != id {
                    if let Some(old) = self.subscriptions.remove(&implicit) {
                        if let Source::Topic { key } = old.source {
                            self.shared
                                .router
                                .topics
                                .unsubscribe(&key, self.id, &implicit);
                        }
                    }
                }
                self.temp_queues.insert(name, key.clone());
                self.add_topic_subscription(id, key.clone(), ack);
                self.await_cluster_reader(&key).await;
            }
            Route::ReplyQueue => {
                return Err(refuse(
                    "reply queues are private; subscribe to your own /temp-queue/ instead",
                ))
            }
            Route::User(rest) => {
                let user = self.principal.user.clone().ok_or_else(|| {
                    refuse("/user/ destinations need a login (CONNECT login header)")
                })?;
                let key = ByteString::from(format!("/user/{user}/{rest}"));
                self.add_topic_subscription(id, key.clone(), ack);
                self.await_cluster_reader(&key).await;
            }
            Route::Queue => {
                self.authorize_queue_use(&destination)?;
                let queue = self.shared.router.queue(&destination);
                self.add_queue_subscription(frame, id, queue, ack).await?;
            }
        }
        Ok(())
    }

    /// Registers this session as a consumer of `queue`.
    async fn add_queue_subscription(
        &mut self,
        frame: &Frame,
        id: ByteString,
        queue: QueueHandle,
        ack: AckMode,
    ) -> Handled {
        let prefetch = match frame.get("prefetch-count") {
            None => self.shared.config.queues.default_prefetch,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| refuse(format!("invalid prefetch-count '{v}'")))?,
        };
        let consumer = self.shared.next_consumer_id();
        queue
            .send(QueueCommand::Subscribe(ConsumerSpec {
                id: consumer,
                subscription: id.clone(),
                outbox: Arc::clone(&self.outbox),
                prefetch,
            }))
            .await?;
        self.subscriptions.insert(
            id,
            Subscription {
                ack,
                source: Source::Queue { queue, consumer },
                unacked: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// The internal queue of a durable topic subscription, if the frame asks
    /// for one: `durable:true` (RabbitMQ) or `activemq.subscriptionName`
    /// (ActiveMQ). The owner is the CONNECT `client-id`, else the login.
    fn durable_subscription_name(
        &self,
        frame: &Frame,
        id: &str,
    ) -> Result<Option<ByteString>, Refusal> {
        let activemq_name = frame.get("activemq.subscriptionName");
        let durable =
            frame.get("durable") == Some("true") || frame.get("persistent") == Some("true");
        if !durable && activemq_name.is_none() {
            return Ok(None);
        }
        let owner = self
            .client_id
            .as_deref()
            .or(self.principal.user.as_deref())
            .ok_or_else(|| refuse("durable subscriptions need a CONNECT client-id or login"))?;
        let name = activemq_name.unwrap_or(id);
        if owner.contains('/') || name.contains('/') {
            return Err(refuse(
                "durable subscription names and client ids may not contain '/'",
            ));
        }
        Ok(Some(durable::queue_name(owner, name)))
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Handled {
        let id = match (frame.headers.get_shared("id"), self.version) {
            (Some(id), _) => id.clone(),
            (None, Version::V1_0) => required(frame, "destination")?,
            (None, _) => return Err(refuse("UNSUBSCRIBE requires an id header")),
        };
        // UNSUBSCRIBE durable:true also deletes the durable subscription,
        // whether or not it is active on this connection.
        if let Some(queue_name) = self.durable_subscription_name(frame, &id)? {
            self.flush_acks();
            if let Some(sub) = self.subscriptions.remove(&id) {
                self.ack_owner.retain(|_, owner| *owner != id);
                // A plain topic subscription unsubscribed with the durable
                // flag must still leave the topic table.
                self.release(&id, sub.source);
            }
            self.shared.router.durable.unbind(&queue_name)?;
            return Ok(());
        }
        // Unknown ids are tolerated: UNSUBSCRIBE is idempotent.
        if let Some(sub) = self.subscriptions.remove(&id) {
            // ACKs before the UNSUBSCRIBE must reach the queue before it
            // takes back this consumer's unacked messages.
            self.flush_acks();
            self.ack_owner.retain(|_, owner| *owner != id);
            self.release(&id, sub.source);
        }
        Ok(())
    }

    fn in_transaction_or(
        &mut self,
        frame: &Frame,
        now: fn(&mut Self, &Frame) -> Handled,
    ) -> Handled {
        if let Some(tx) = frame.get("transaction") {
            let ops = self
                .transactions
                .get_mut(tx)
                .ok_or_else(|| refuse(format!("unknown transaction '{tx}'")))?;
            ops.push(match frame.command {
                Command::Nack => TxOp::Nack(frame.clone()),
                _ => TxOp::Ack(frame.clone()),
            });
            return Ok(());
        }
        now(self, frame)
    }

    fn on_ack(&mut self, frame: &Frame) -> Handled {
        self.settle(frame, false)
    }

    fn on_nack(&mut self, frame: &Frame) -> Handled {
        if self.version == Version::V1_0 {
            return Err(refuse("NACK does not exist in STOMP 1.0"));
        }
        self.settle(frame, true)
    }

    /// ACK or NACK: finds the deliveries the frame names (per version) and
    /// tells their queue.
    fn settle(&mut self, frame: &Frame, nack: bool) -> Handled {
        let found = match self.version {
            Version::V1_2 => {
                let id = required(frame, "id")?;
                match id.parse::<u64>() {
                    Ok(ack_id) => self.ack_owner.get(&ack_id).cloned().map(|s| (s, ack_id)),
                    Err(_) => return Err(refuse(format!("unknown ack id '{id}'"))),
                }
            }
            Version::V1_1 => {
                let message_id = required(frame, "message-id")?;
                let sub_id = required(frame, "subscription")?;
                self.subscriptions
                    .get(&sub_id)
                    .and_then(|s| s.ack_id_of(&message_id))
                    .map(|ack_id| (sub_id, ack_id))
            }
            Version::V1_0 => {
                let message_id = required(frame, "message-id")?;
                self.subscriptions
                    .iter()
                    .find_map(|(id, s)| s.ack_id_of(&message_id).map(|a| (id.clone(), a)))
            }
        };
        // Topic deliveries and repeated ACKs have nothing left to settle.
        let Some((sub_id, ack_id)) = found else {
            return Ok(());
        };
        let Some(sub) = self.subscriptions.get_mut(&sub_id) else {
            return Ok(());
        };
        let settled = sub.take_acked(ack_id);
        let Source::Queue { queue, consumer } = &sub.source else {
            return Ok(());
        };
        let (queue, consumer) = (queue.clone(), *consumer);
        let mut tags = Vec::with_capacity(settled.len());
        for (ack_id, tag) in settled {
            self.ack_owner.remove(&ack_id);
            tags.push(tag);
        }
        if nack {
            // Keep the queue's view in frame order: earlier ACKs first.
            self.flush_acks();
            let requeue = frame.get("requeue") != Some("false");
            queue.send_now(QueueCommand::Nack {
                consumer,
                tags,
                requeue,
            });
        } else {
            self.pending_acks
                .entry(consumer)
                .or_insert_with(|| (queue, Vec::new()))
                .1
                .extend(tags);
        }
        Ok(())
    }

    fn on_begin(&mut self, frame: &Frame) -> Handled {
        let tx = required(frame, "transaction")?;
        if self.transactions.contains_key(&tx) {
            return Err(refuse(format!("transaction '{tx}' has already begun")));
        }
        self.transactions.insert(tx, Vec::new());
        Ok(())
    }

    async fn on_commit(&mut self, frame: &Frame) -> Handled {
        let tx = required(frame, "transaction")?;
        let ops = self
            .transactions
            .remove(&tx)
            .ok_or_else(|| refuse(format!("unknown transaction '{tx}'")))?;
        for op in ops {
            match op {
                TxOp::Send(mut send) => {
                    // Receipts for SENDs inside a transaction were written
                    // when they were accepted.
                    send.headers.remove("receipt");
                    self.on_send(send, false).await?
                }
                TxOp::Ack(ack) => self.on_ack(&ack)?,
                TxOp::Nack(nack) => self.on_nack(&nack)?,
            }
        }
        Ok(())
    }

    fn on_abort(&mut self, frame: &Frame) -> Handled {
        let tx = required(frame, "transaction")?;
        self.transactions
            .remove(&tx)
            .map(|_| ())
            .ok_or_else(|| refuse(format!("unknown transaction '{tx}'")))
    }
}

/// The value of a header the frame must carry.
fn required(frame: &Frame, name: &str) -> Result<ByteString, Refusal> {
    frame
        .headers
        .get_shared(name)
        .cloned()
        .ok_or_else(|| refuse(format!("{} requires a {name} header", frame.command)))
}

/// The highest version both sides speak; no header means 1.0.
fn negotiate_version(accept: Option<&str>) -> Option<Version> {
    match accept {
        None => Some(Version::V1_0),
        Some(list) => list.split(',').filter_map(Version::parse).max(),
    }
}

/// `heart-beat: cx,cy` → (cx, cy) in milliseconds.
fn parse_heartbeat(value: &str) -> Option<(u64, u64)> {
    let (a, b) = value.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The negotiated interval: none if either side said 0, else the larger.
fn interval(ours: u64, theirs: u64) -> Option<Duration> {
    (ours > 0 && theirs > 0).then(|| Duration::from_millis(ours.max(theirs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_picks_the_highest_common() {
        assert_eq!(negotiate_version(None), Some(Version::V1_0));
        assert_eq!(negotiate_version(Some("1.0,1.1,1.2")), Some(Version::V1_2));
        assert_eq!(negotiate_version(Some("1.1")), Some(Version::V1_1));
        assert_eq!(negotiate_version(Some("1.1,2.0")), Some(Version::V1_1));
        assert_eq!(negotiate_version(Some("2.0")), None);
    }

    #[test]
    fn heartbeat_intervals() {
        assert_eq!(parse_heartbeat("100, 200"), Some((100, 200)));
        assert_eq!(parse_heartbeat("x,1"), None);
        assert_eq!(interval(0, 5), None);
        assert_eq!(interval(10, 5), Some(Duration::from_millis(10)));
    }
}
