//! The [`Plugin`] implementation: checks what can be checked at once
//! (identity, destination, membership), answers the directory queries
//! (`/rooms/create`, `/rooms/list`) and queues the rest for the room
//! tasks. Hooks never wait.

use crate::cluster::{self, Cluster};
use crate::dest::{self, Target, Verb};
use crate::directory::{Directory, RoomSummary};
use crate::limits::Kind;
use crate::record::{Member, Role, RoomKind, RoomMeta};
use crate::reply::{ReplyTo, Target as ReplyTarget};
use crate::repo::{self, StoredRoom};
use crate::rooms::{Caller, Channel, Cmd, Ctx, HistoryQuery, Relation, Sub};
use crate::state::now_ms;
use crate::store::{KvStore, MemoryStore, SledStore};
use crate::webhook::Webhook;
use crate::{replay, timeline, ChatPlugin};
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use stompede_codec::Headers;
use stompede_plugin::{
    ApplyFuture, Gauge, LogRecord, Message, OwnedSend, OwnedSubscribe, Plugin, ReceiptTiming,
    Refusal, Services, SessionInfo,
};

/// Which room each owned subscription is on, per `(session, id)`.
pub type OwnedSubs = Mutex<HashMap<(u64, ByteString), String>>;

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A process-unique token, for room ids and epochs.
fn unique() -> String {
    format!(
        "{:x}{:x}",
        now_ms(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A short, stable tag of a node id (FNV-1a), for generated room ids.
fn node_tag(node: &str) -> u32 {
    node.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn owned_subs(
    plugin: &ChatPlugin,
) -> std::sync::MutexGuard<'_, HashMap<(u64, ByteString), String>> {
    plugin.owned_subs.lock().unwrap_or_else(|e| e.into_inner())
}

fn number(headers: &Headers, name: &str) -> Result<Option<u64>, String> {
    headers
        .get(name)
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| format!("{name} must be a non-negative integer, not {v:?}"))
        })
        .transpose()
}

fn summary_json(r: &RoomSummary) -> serde_json::Value {
    serde_json::json!({
        "room": r.id,
        "kind": r.kind.as_str(),
        "name": r.name,
        "role": r.role.as_str(),
        "head": r.head,
        "read_seq": r.read_seq,
        "unread": r.unread,
    })
}

impl ChatPlugin {
    fn ctx(&self) -> Result<Arc<Ctx>, Refusal> {
        self.current()
            .ok_or_else(|| Refusal::new("the chat plugin is not running"))
    }

    /// A refusal about chat rules: soft unless `strict`.
    fn refuse(&self, message: impl Into<String>) -> Refusal {
        if self.config.strict {
            Refusal::new(message)
        } else {
            Refusal::soft(message)
        }
    }

    fn user<'a>(&self, session: &'a SessionInfo) -> Result<&'a str, Refusal> {
        match session.user.as_deref() {
            Some(user) if !user.is_empty() && !user.contains('\0') => Ok(user),
            _ => Err(self.refuse("chat needs an authenticated user")),
        }
    }

    fn text<'h>(&self, headers: &'h Headers, name: &str) -> Result<Option<&'h str>, Refusal> {
        match headers.get(name) {
            Some(v) if v.len() > self.config.max_text || v.contains('\0') => {
                Err(self.refuse(format!(
                    "{name} is longer than {} bytes or has NUL",
                    self.config.max_text
                )))
            }
            Some("") => Ok(None),
            other => Ok(other),
        }
    }

    /// Refuses `user` over their rate for `kind`.
    fn limit(&self, user: &str, kind: Kind) -> Result<(), Refusal> {
        if self.limiter.allow(user, kind, std::time::Instant::now()) {
            Ok(())
        } else {
            Err(self.refuse("rate limited"))
        }
    }

    /// Queues `cmd` for its room; in cluster mode a command that changes
    /// the room goes to the log instead, and is answered once applied.
    fn dispatch(&self, ctx: &Arc<Ctx>, room: &str, cmd: Cmd) -> Result<ReceiptTiming, Refusal> {
        let cmd = match &ctx.cluster {
            None => cmd,
            Some(cluster) => match cluster::split(cmd) {
                Ok((caller, command, op)) => {
                    cluster
                        .submit(&ctx.services, room, caller, command, op)
                        .map_err(|e| self.refuse(e))?;
                    return Ok(ReceiptTiming::Later);
                }
                Err(cmd) => cmd,
            },
        };
        ctx.dispatch(room, cmd).map_err(|e| self.refuse(e))?;
        Ok(ReceiptTiming::Later)
    }

    /// Answers at once (RECEIPT with `headers`, reply MESSAGE with `body`).
    fn answer(
        &self,
        ctx: &Ctx,
        caller: &Caller,
        command: &str,
        headers: Headers,
        body: serde_json::Value,
    ) -> ReceiptTiming {
        if let Some(id) = &caller.receipt {
            caller.mailbox.receipt(id.clone(), headers.clone());
        }
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        caller
            .reply
            .send(&*ctx.services, "reply", command, headers, body);
        ReceiptTiming::Later
    }

    fn create(
        &self,
        ctx: &Arc<Ctx>,
        caller: Caller,
        headers: &Headers,
    ) -> Result<ReceiptTiming, Refusal> {
        let user = caller.user.clone();
        let name = self.text(headers, "x-name")?;
        let (id, kind, members) = match headers.get("x-kind").unwrap_or("group") {
            "direct" => {
                let peer = self
                    .text(headers, "x-with")?
                    .ok_or_else(|| self.refuse("a direct room needs x-with (the other user)"))?;
                if peer == user || peer.contains('\0') {
                    return Err(self.refuse("a direct room needs another user"));
                }
                let id = dest::direct_room_id(&user, peer);
                let members = vec![
                    (user.clone(), Member::new(Role::Member)),
                    (peer.to_owned(), Member::new(Role::Member)),
                ];
                (id, RoomKind::Direct, members)
            }
            "group" => {
                let id = match self.text(headers, "x-room-id")? {
                    Some(id) => {
                        dest::check_room_id(id).map_err(|e| self.refuse(e))?;
                        if id.starts_with("dm~") {
                            return Err(self.refuse("room ids starting with dm~ are direct rooms"));
                        }
                        id.to_owned()
                    }
                    None => match &ctx.cluster {
                        // Unique across nodes too.
                        Some(cluster) => format!("g-{}-{:x}", unique(), node_tag(&cluster.node)),
                        None => format!("g-{}", unique()),
                    },
                };
                let mut members = vec![(user.clone(), Member::new(Role::Owner))];
                for invitee in headers.get("x-invite").unwrap_or("").split(',') {
                    let invitee = invitee.trim();
                    if !invitee.is_empty()
                        && invitee != user
                        && !invitee.contains('\0')
                        && !members.iter().any(|(u, _)| u == invitee)
                    {
                        members.push((invitee.to_owned(), Member::new(Role::Invited)));
                    }
                }
                (id, RoomKind::Group, members)
            }
            other => return Err(self.refuse(format!("x-kind is group or direct, not {other:?}"))),
        };
        if let Some(cluster) = &ctx.cluster {
            // Whether the room exists is decided where the record is
            // applied: in log order, the same on every node.
            let op = cluster::Op::Create {
                kind,
                name: name.unwrap_or(&id).to_owned(),
                public: kind == RoomKind::Group && headers.get("x-public") == Some("true"),
                members: members.into_iter().map(|(u, m)| (u, m.role)).collect(),
            };
            cluster
                .submit(&ctx.services, &id, caller, "create", op)
                .map_err(|e| self.refuse(e))?;
            return Ok(ReceiptTiming::Later);
        }
        let mut dir = ctx.dir_mut();
        if let Some(role) = dir.role(&id, &user) {
            drop(dir);
            if kind == RoomKind::Direct && role == Role::Invited {
                // Created before and left since: come back.
                return self.dispatch(ctx, &id, Cmd::Join(caller));
            }
            if kind == RoomKind::Group {
                return Err(self.refuse(format!("room {id} exists")));
            }
            let h: Headers = [("x-room", id.as_str()), ("x-created", "false")]
                .into_iter()
                .collect();
            let body = serde_json::json!({ "room": id, "created": false });
            return Ok(self.answer(ctx, &caller, "create", h, body));
        }
        if dir.room(&id).is_some() {
            return Err(self.refuse(format!("room {id} exists")));
        }
        let meta = RoomMeta {
            id: id.clone(),
            kind,
            name: name.unwrap_or(&id).to_owned(),
            public: kind == RoomKind::Group && headers.get("x-public") == Some("true"),
            epoch: unique(),
            created_at: now_ms(),
            created_by: user,
            head: 0,
            msg_count: 0,
        };
        dir.insert_room(&meta, members.clone());
        drop(dir);
        let room = StoredRoom { meta, members };
        ctx.dispatch(&id, Cmd::Init(Box::new(room), caller))
            .map_err(|e| {
                ctx.dir_mut().remove_room(&id);
                self.refuse(e)
            })?;
        Ok(ReceiptTiming::Later)
    }

    fn list(
        &self,
        ctx: &Ctx,
        caller: &Caller,
        headers: &Headers,
    ) -> Result<ReceiptTiming, Refusal> {
        let limit = number(headers, "x-limit")
            .map_err(|e| self.refuse(e))?
            .map_or(50, |n| usize::try_from(n).unwrap_or(usize::MAX))
            .clamp(1, self.config.max_rooms_page);
        let after = headers.get("x-after");
        let (page, next) = ctx.dir().rooms_of(&caller.user, after, limit);
        let mut h = Headers::new();
        h.push("x-count", page.len().to_string());
        if let Some(next) = &next {
            h.push("x-next", next.clone());
        }
        h.push("content-type", "application/json");
        let body = serde_json::json!({
            "rooms": page.iter().map(summary_json).collect::<Vec<_>>(),
            "next": next,
        });
        Ok(self.answer(ctx, caller, "list", h, body))
    }

    fn room_command(
        &self,
        ctx: &Arc<Ctx>,
        caller: Caller,
        room: &str,
        verb: Verb,
        send: OwnedSend,
    ) -> Result<ReceiptTiming, Refusal> {
        let headers = &send.headers;
        // In cluster mode the room's task decides (this node's replica may
        // not have applied the room's creation yet).
        if ctx.cluster.is_none() && ctx.dir().room(room).is_none() {
            return Err(self.refuse(format!("no room {room}")));
        }
        let user_arg = || {
            self.text(headers, "x-user")?
                .map(str::to_owned)
                .ok_or_else(|| self.refuse(format!("{} needs x-user", verb.as_str())))
        };
        let cmd = match verb {
            Verb::Join => Cmd::Join(caller),
            Verb::Leave => Cmd::Leave(caller),
            Verb::Invite => Cmd::Invite(caller, user_arg()?),
            Verb::Kick => Cmd::Kick(caller, user_arg()?),
            Verb::Role => {
                let role = match headers.get("x-role") {
                    Some("moderator") => Role::Moderator,
                    Some("member") => Role::Member,
                    other => {
                        return Err(
                            self.refuse(format!("x-role is moderator or member, not {other:?}"))
                        )
                    }
                };
                Cmd::SetRole(caller, user_arg()?, role)
            }
            Verb::Read => {
                self.limit(&caller.user, Kind::Read)?;
                let seq = number(headers, "x-seq")
                    .map_err(|e| self.refuse(e))?
                    .ok_or_else(|| self.refuse("read needs x-seq"))?;
                Cmd::Read(caller, seq, headers.get("x-private") == Some("true"))
            }
            Verb::History => {
                let n = |name| number(headers, name).map_err(|e| self.refuse(e));
                let limit = n("x-limit")?
                    .map_or(self.config.default_history_page, |l| {
                        usize::try_from(l).unwrap_or(usize::MAX)
                    })
                    .clamp(1, self.config.max_history_page);
                Cmd::History(
                    caller,
                    HistoryQuery {
                        before: n("x-before-seq")?,
                        after: n("x-after-seq")?,
                        limit,
                    },
                )
            }
            Verb::Info => Cmd::Info(caller),
            Verb::Edit | Verb::Redact | Verb::React => {
                self.limit(&caller.user, Kind::Post)?;
                let to = number(headers, "x-relates-to")
                    .map_err(|e| self.refuse(e))?
                    .ok_or_else(|| self.refuse(format!("{} needs x-relates-to", verb.as_str())))?;
                let relation = match verb {
                    Verb::Edit => Relation::Edit,
                    Verb::Redact => Relation::Redact,
                    _ => Relation::React(
                        self.text(headers, "x-reaction")?
                            .ok_or_else(|| self.refuse("react needs x-reaction"))?
                            .to_owned(),
                    ),
                };
                Cmd::Relate {
                    caller,
                    relation,
                    to,
                    client_msg_id: self.text(headers, "x-client-msg-id")?.map(str::to_owned),
                    headers: timeline::kept_headers(headers),
                    body: send.body.clone(),
                }
            }
            Verb::Receipts | Verb::Presence => {
                return Err(self.refuse(format!(
                    "SUBSCRIBE to {room}/{}; it takes no SEND",
                    verb.as_str()
                )))
            }
            Verb::Typing => {
                self.limit(&caller.user, Kind::Typing)?;
                Cmd::Typing(caller, headers.get("x-typing") != Some("false"))
            }
        };
        self.dispatch(ctx, room, cmd)
    }
}

/// The inbox snapshot: every room's unread count.
fn snapshot(dir: &Directory, user: &str) -> (Headers, Bytes) {
    let rooms = dir.unread_of(user);
    let total: u64 = rooms.iter().map(|(_, unread, _)| unread).sum();
    let body = serde_json::json!({
        "rooms": rooms
            .iter()
            .map(|(room, unread, read_seq)| {
                serde_json::json!({ "room": room, "unread": unread, "read_seq": read_seq })
            })
            .collect::<Vec<_>>(),
    });
    let mut h = Headers::new();
    h.push("x-event", "unread-snapshot");
    h.push("x-total-unread", total.to_string());
    h.push("content-type", "application/json");
    (
        h,
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    )
}

impl Plugin for ChatPlugin {
    fn name(&self) -> &str {
        "chat"
    }

    fn metrics(&self) -> Vec<Gauge> {
        let (rooms, online) = self.current().map_or((0, 0), |ctx| {
            let rooms = ctx
                .dir
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .room_count();
            (rooms, ctx.online.users_online())
        });
        let mut gauges = vec![
            Gauge {
                name: "chat_rooms",
                help: "Chat rooms that exist.",
                value: rooms as u64,
            },
            Gauge {
                name: "chat_rooms_running",
                help: "Chat rooms with a running task (in use recently).",
                value: self.running_rooms() as u64,
            },
            Gauge {
                name: "chat_users_online",
                help: "Users with at least one connected session.",
                value: online as u64,
            },
        ];
        if let Some(cluster) = self.current().as_ref().and_then(|ctx| ctx.cluster.as_ref()) {
            gauges.push(Gauge {
                name: "chat_log_waiting",
                help: "Chat commands of this node's clients waiting for their log record (cluster mode).",
                value: cluster.pending.len() as u64,
            });
        }
        gauges
    }

    fn start(&self, services: Arc<dyn Services>) -> Result<(), String> {
        self.config.validate()?;
        let store: Arc<dyn KvStore> = match services.data_dir("chat") {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                Arc::new(SledStore::open(&dir).map_err(|e| e.to_string())?)
            }
            None => Arc::new(MemoryStore::default()),
        };
        let rooms = repo::load_rooms(&*store).map_err(|e| e.to_string())?;
        let dir = Directory::from_stored(rooms);
        let mut slot = self.ctx.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err("the chat plugin was started twice".to_owned());
        }
        let mut offline_hooks = self.offline_hooks.clone();
        if !self.config.webhook_url.is_empty() {
            let timeout = std::time::Duration::from_millis(self.config.webhook_timeout_ms);
            let hook =
                Webhook::start(&self.config.webhook_url, self.config.webhook_queue, timeout)?;
            offline_hooks.push(Arc::new(hook));
        }
        let cluster = services.log("chat").map(Cluster::new);
        if let Some(cluster) = &cluster {
            tracing::info!(node = %cluster.node, partitions = cluster.log.partitions(), "chat in cluster mode");
            cluster.announce_start();
        }
        let ctx = Ctx::new(
            self.config.clone(),
            store,
            dir,
            services,
            offline_hooks,
            cluster,
        );
        *slot = Some(Arc::new(ctx));
        Ok(())
    }

    fn log_name(&self) -> Option<&str> {
        Some("chat")
    }

    fn log_resume_offset(&self, partition: u32) -> Option<u64> {
        let ctx = self.current()?;
        match repo::watermark(&*ctx.store, partition) {
            Ok(offset) => offset,
            Err(e) => {
                // Reading from the start is safe: rooms skip what they
                // stored.
                tracing::error!(partition, error = %e, "chat log position unreadable");
                None
            }
        }
    }

    fn on_log_record(&self, record: LogRecord) -> ApplyFuture<'_> {
        Box::pin(async move {
            if let Some(ctx) = self.current() {
                cluster::apply_record(&ctx, record).await;
            }
        })
    }

    fn stop(&self) {
        self.shut_down();
    }

    fn owned_prefixes(&self) -> Vec<String> {
        vec![
            self.config.room_prefix.clone(),
            self.config.rooms_prefix.clone(),
        ]
    }

    fn on_connect(&self, session: &SessionInfo) -> Result<(), Refusal> {
        if let (Ok(ctx), Some(user)) = (self.ctx(), session.user.as_deref()) {
            ctx.online.connected(user, session.session_id);
        }
        Ok(())
    }

    fn on_disconnect(&self, session: &SessionInfo) {
        if let (Ok(ctx), Some(user)) = (self.ctx(), session.user.as_deref()) {
            ctx.online.disconnected(user, session.session_id);
        }
    }

    /// A SUBSCRIBE to the inbox gets the unread snapshot on exactly that
    /// subscription, before its RECEIPT: the directory is read after the
    /// subscription is attached, so a count pushed since is never older
    /// than the snapshot, and the user's other sessions get nothing.
    fn on_subscribed(&self, session: &SessionInfo, destination: &str, subscription: &ByteString) {
        let (Ok(ctx), Some(user)) = (self.ctx(), session.user.as_deref()) else {
            return;
        };
        if destination.strip_prefix("/user/") != Some(self.config.inbox.as_str()) {
            return;
        }
        let (headers, body) = snapshot(&ctx.dir(), user);
        let message = Message::new(ByteString::from(destination.to_owned()), headers, body);
        session
            .mailbox
            .deliver_reliably(subscription.clone(), Arc::new(message));
    }

    /// A SEND refused here (not by the room) keeps the connection with a
    /// RECEIPT carrying `x-error`, if one was asked for; the client also
    /// gets an `x-event:error` MESSAGE when it asked for no RECEIPT or
    /// named `reply-to` / `correlation-id`.
    fn on_owned_send(
        &self,
        session: &SessionInfo,
        send: OwnedSend,
    ) -> Result<ReceiptTiming, Refusal> {
        let ctx = &self.ctx()?;
        let user = self.user(session)?;
        let wants_message = send.receipt.is_none()
            || send.headers.contains("reply-to")
            || send.headers.contains("correlation-id");
        let about = wants_message.then(|| RefusedSend::of(&self.config, user, &send));
        let result = self.owned_send(ctx, session, user, send);
        if let (Err(refusal), Some(about)) = (&result, about) {
            if refusal.soft {
                self.tell_refused(ctx, about, &refusal.message);
            }
        }
        result
    }

    fn on_owned_subscribe(
        &self,
        session: &SessionInfo,
        subscribe: OwnedSubscribe,
    ) -> Result<(), Refusal> {
        let ctx = &self.ctx()?;
        let user = self.user(session)?;
        let target = dest::parse(
            &subscribe.destination,
            &self.config.room_prefix,
            &self.config.rooms_prefix,
        )
        .map_err(|e| self.refuse(e))?;
        let (room, channel) = match target {
            Target::Timeline(room) => (room, Channel::Timeline),
            Target::Room(room, Verb::Receipts) => (room, Channel::Receipts),
            Target::Room(room, Verb::Presence) => (room, Channel::Presence),
            Target::Room(room, Verb::Typing) => (room, Channel::Typing),
            _ => {
                return Err(
                    self.refuse(format!("{} cannot be subscribed to", subscribe.destination))
                )
            }
        };
        if !ctx.dir().is_member(room, user) {
            return Err(self.refuse(format!("not a member of room {room}")));
        }
        let request = match channel {
            Channel::Timeline => replay::parse(&subscribe.headers).map_err(|e| self.refuse(e))?,
            _ => replay::Request::Nothing,
        };
        let key = (session.session_id, subscribe.id.clone());
        owned_subs(self).insert(key.clone(), room.to_owned());
        let sub = Sub {
            session_id: session.session_id,
            id: subscribe.id,
            user: user.to_owned(),
            mailbox: session.mailbox.clone(),
        };
        let cmd = Cmd::Subscribe {
            sub,
            request,
            channel,
        };
        ctx.dispatch(room, cmd).map_err(|e| {
            owned_subs(self).remove(&key);
            self.refuse(e)
        })
    }

    fn on_owned_unsubscribe(&self, session: &SessionInfo, subscription: &ByteString) {
        let Ok(ctx) = self.ctx() else {
            return;
        };
        let key = (session.session_id, subscription.clone());
        if let Some(room) = owned_subs(self).remove(&key) {
            let cmd = Cmd::Unsubscribe {
                session_id: key.0,
                id: key.1,
            };
            // Never lost to a full queue: presence must not lag.
            ctx.dispatch_reliably(&room, cmd);
        }
    }
}

impl ChatPlugin {
    /// `on_owned_send` once the session is known to have a user.
    fn owned_send(
        &self,
        ctx: &Arc<Ctx>,
        session: &SessionInfo,
        user: &str,
        send: OwnedSend,
    ) -> Result<ReceiptTiming, Refusal> {
        let target = dest::parse(
            &send.destination,
            &self.config.room_prefix,
            &self.config.rooms_prefix,
        )
        .map_err(|e| self.refuse(e))?;
        let reply = ReplyTo::from_send(user, &send.headers, &self.config.inbox)
            .map_err(|e| self.refuse(e))?;
        let caller = Caller {
            user: user.to_owned(),
            mailbox: session.mailbox.clone(),
            receipt: send.receipt.clone(),
            reply,
            replica: false,
        };
        match target {
            Target::Create => self.create(ctx, caller, &send.headers),
            Target::List => self.list(ctx, &caller, &send.headers),
            Target::Room(room, verb) => {
                let room = room.to_owned();
                self.room_command(ctx, caller, &room, verb, send)
            }
            Target::Timeline(room) => {
                if ctx.cluster.is_none() && !ctx.dir().is_member(room, user) {
                    return Err(self.refuse(format!("not a member of room {room}")));
                }
                self.limit(user, Kind::Post)?;
                let client_msg_id = self
                    .text(&send.headers, "x-client-msg-id")?
                    .map(str::to_owned);
                let cmd = Cmd::Post {
                    caller,
                    headers: timeline::kept_headers(&send.headers),
                    body: send.body,
                    client_msg_id,
                };
                self.dispatch(ctx, room, cmd)
            }
        }
    }

    /// The `x-event:error` MESSAGE of a SEND refused in the hooks: to its
    /// reply destination (the inbox unless it named a valid `reply-to`),
    /// with `x-error`, `x-command`, `x-destination`, `x-room` and
    /// `x-client-msg-id` when known. Rate limited per user, so a client
    /// that floods refused SENDs gets a bounded number of them.
    fn tell_refused(&self, ctx: &Ctx, about: RefusedSend, error: &str) {
        if self.config.error_notice_rate == 0
            || !self
                .limiter
                .allow(&about.reply.user, Kind::Notice, std::time::Instant::now())
        {
            return;
        }
        let mut h = Headers::new();
        h.push("x-error", error.replace(['\r', '\n'], " "));
        h.push("x-destination", about.destination);
        if let Some(room) = about.room {
            h.push("x-room", room);
        }
        if let Some(id) = about.client_msg_id {
            h.push("x-client-msg-id", id);
        }
        about
            .reply
            .send(&*ctx.services, "error", about.command, h, Bytes::new());
    }
}

/// What the error MESSAGE of a refused SEND says about it.
struct RefusedSend {
    /// Where it goes (and who is told).
    reply: ReplyTo,
    /// `x-command`: `post`, `create`, `list`, or the room verb.
    command: &'static str,
    destination: String,
    room: Option<String>,
    client_msg_id: Option<String>,
}

impl RefusedSend {
    fn of(config: &crate::ChatConfig, user: &str, send: &OwnedSend) -> RefusedSend {
        let headers = &send.headers;
        let reply = ReplyTo::from_send(user, headers, &config.inbox).unwrap_or_else(|_| ReplyTo {
            user: user.to_owned(),
            target: ReplyTarget::User {
                tail: config.inbox.clone(),
            },
            correlation_id: headers.get("correlation-id").map(str::to_owned),
            explicit: true,
        });
        let target = dest::parse(&send.destination, &config.room_prefix, &config.rooms_prefix);
        let (command, room) = match target {
            Ok(Target::Create) => ("create", None),
            Ok(Target::List) => ("list", None),
            Ok(Target::Timeline(room)) => ("post", Some(room.to_owned())),
            Ok(Target::Room(room, verb)) => (verb.as_str(), Some(room.to_owned())),
            Err(_) => ("unknown", None),
        };
        let sane = |v: &&str| v.len() <= config.max_text && !v.contains(['\0', '\r', '\n']);
        let mut destination: String = send.destination.to_string();
        if !sane(&destination.as_str()) {
            destination.clear();
        }
        RefusedSend {
            reply,
            command,
            destination,
            room,
            client_msg_id: headers
                .get("x-client-msg-id")
                .filter(sane)
                .map(str::to_owned),
        }
    }
}
