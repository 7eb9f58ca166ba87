//! A room's task: takes commands from its channel in turns, stores what a
//! turn wrote with one flush (group commit), then answers and delivers in
//! order. Between turns it publishes coalesced receipts and unread counts;
//! without subscribers it stops after a while.

use crate::channels::{Channel, Channels};
use crate::cluster::Op as LogOp;
use crate::offline::OfflineMessage;
use crate::record::{Member, RoomMeta};
use crate::replay::Request;
use crate::reply::{notify, ReplyTo};
use crate::rooms::{Applied, Caller, Cmd, Ctx, Sub};
use crate::state::now_ms;
use crate::store::{Op, StoreError};
use crate::{repo, retention, state::State};
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use stompede_codec::Headers;
use stompede_plugin::{LogPosition, Mailbox, Message};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The most commands one turn takes.
const MAX_TURN: usize = 512;

/// Cluster mode: how long a resume (`x-since-seq` in the room's epoch)
/// beyond what this replica applied waits for the room to apply up to it.
const RESUME_WAIT: Duration = Duration::from_secs(5);

/// Cluster mode: the most resumes one room holds so; more are answered
/// at once.
const MAX_PARKED: usize = 1024;

/// Cluster mode: a timeline subscription resuming from a sequence number
/// this replica has not applied yet (the node the client used before died
/// after applying records this one has not applied yet): its replay waits
/// until the room applied up to `seq`, or until `until`.
#[derive(Debug)]
struct Parked {
    sub: Sub,
    request: Request,
    seq: u64,
    until: Instant,
}

/// What a turn does once its writes are stored, in order.
#[derive(Debug)]
pub enum Out {
    /// A timeline MESSAGE for every subscriber.
    Live(Arc<Message>),
    /// A timeline MESSAGE for every subscriber, of a record another node
    /// appended (cluster mode: that node tells the offline hooks).
    Replica(Arc<Message>),
    /// Presence through another node (cluster mode).
    RemotePresence {
        /// That node.
        node: String,
        /// The user.
        user: String,
        /// Present or gone.
        online: bool,
    },
    /// A RECEIPT with headers.
    Receipt(Mailbox, ByteString, Headers),
    /// An answer to a command.
    Reply {
        /// Where it goes.
        to: ReplyTo,
        /// `x-event` (`reply`, `error`, `history-end` …).
        event: &'static str,
        /// `x-command`.
        command: &'static str,
        /// More headers.
        headers: Headers,
        /// The body (JSON).
        body: Bytes,
    },
    /// A stored event sent to a reply destination (a history page).
    Forward(ReplyTo, Message),
    /// A notice in a user's inbox.
    Notify(String, Headers, Bytes),
    /// One MESSAGE for one subscription (replay, markers).
    Deliver(Sub, Arc<Message>),
    /// The subscription receives live messages from now on.
    Attach(Sub, Channel),
    /// A user starts (`true`) or stops typing.
    Typing(String, bool),
    /// A subscription ends.
    Detach(u64, ByteString),
    /// Every subscription of a user who is no longer a member ends.
    Evict(String),
}

/// A directory change, applied when the turn is stored.
#[derive(Debug)]
pub enum DirOp {
    /// A room was created (cluster mode: from the log).
    Room(RoomMeta),
    /// A member changed (or left: `None`).
    Member(String, Option<Member>),
}

/// What one turn produced.
#[derive(Debug, Default)]
pub struct Turn {
    /// Writes.
    pub ops: Vec<Op>,
    /// Effects, in order.
    pub outs: Vec<Out>,
    /// Directory changes.
    pub dir: Vec<DirOp>,
    /// Whether the room's description changed.
    pub meta_dirty: bool,
    /// Users whose read marker others should learn (coalesced).
    pub receipts: Vec<(String, u64)>,
    /// Whether unread counts changed for the members.
    pub unread_changed: bool,
    /// How many commands it took.
    pub cmds: usize,
    /// Whether retention deleted events (more may be due).
    pub pruned: bool,
    /// Cluster mode: the time of the record being applied, which every
    /// node stamps on what it stores (`None`: the clock's time).
    pub clock: Option<u64>,
    /// Cluster mode: the log records this turn applied (marked stored
    /// once its writes are).
    pub applied: Vec<LogPosition>,
    /// Cluster mode: the newest record of the turn that the room stored.
    pub applied_offset: Option<u64>,
}

impl Turn {
    /// Answers a command that failed: a RECEIPT with `x-error` if one was
    /// asked for, and an error MESSAGE unless the RECEIPT says it all.
    pub fn fail(&mut self, caller: &Caller, command: &'static str, error: &str) {
        if caller.replica {
            return;
        }
        let mut headers = Headers::new();
        headers.push("x-error", error.to_owned());
        if let Some(id) = &caller.receipt {
            self.outs.push(Out::Receipt(
                caller.mailbox.clone(),
                id.clone(),
                headers.clone(),
            ));
        }
        if caller.receipt.is_none() || caller.reply.explicit {
            self.outs.push(Out::Reply {
                to: caller.reply.clone(),
                event: "error",
                command,
                headers,
                body: Bytes::new(),
            });
        }
    }

    /// Answers a command that succeeded: the RECEIPT carries `headers`;
    /// a reply MESSAGE is sent for queries (`body` given) or when the
    /// SEND asked for one.
    pub fn ok(
        &mut self,
        caller: &Caller,
        command: &'static str,
        headers: Headers,
        body: Option<Bytes>,
    ) {
        if caller.replica {
            return;
        }
        if let Some(id) = &caller.receipt {
            self.outs.push(Out::Receipt(
                caller.mailbox.clone(),
                id.clone(),
                headers.clone(),
            ));
        }
        if body.is_some() || caller.reply.explicit {
            self.outs.push(Out::Reply {
                to: caller.reply.clone(),
                event: "reply",
                command,
                headers,
                body: body.unwrap_or_default(),
            });
        }
    }
}

/// The shared, fixed part of a room task.
#[derive(Debug)]
pub struct Env {
    /// The plugin's context.
    pub ctx: Arc<Ctx>,
    /// The room id.
    pub id: String,
    /// `/room/{id}`.
    pub dest: ByteString,
}

/// A room task's state.
struct Room {
    env: Env,
    state: Option<State>,
    /// Why the room could not be loaded, if it could not.
    broken: Option<String>,
    /// Live subscriptions, presence and typing.
    channels: Channels,
    /// Read markers to publish on the next tick.
    receipts: BTreeMap<String, u64>,
    /// Whether unread counts must be pushed on the next tick.
    unread_dirty: bool,
    /// The unread count last pushed to each user.
    pushed_unread: HashMap<String, u64>,
    next_tick: Option<Instant>,
    /// When retention runs next.
    next_prune: Option<Instant>,
    /// When the room last took a command (not its own); it stops after
    /// `room_idle_secs` without one and without subscribers.
    last_active: Instant,
    /// Cluster mode: the offset of the newest log record the room stored
    /// (records at or below it are not applied again).
    applied: Option<u64>,
    /// Cluster mode: resumes waiting for the room to reach their cursor.
    parked: Vec<Parked>,
}

/// The task of room `id`.
pub async fn run(ctx: Arc<Ctx>, id: String, mut rx: mpsc::Receiver<Cmd>) {
    let dest = ByteString::from(format!("{}{id}", ctx.config.room_prefix));
    let channels = Channels::new(
        dest.clone(),
        Duration::from_millis(ctx.config.presence_grace_ms),
        Duration::from_millis(ctx.config.typing_ttl_ms),
    );
    let mut channels = channels;
    if ctx.cluster.is_some() {
        channels.share_presence();
    }
    let mut room = Room {
        env: Env { ctx, id, dest },
        state: None,
        broken: None,
        channels,
        receipts: BTreeMap::new(),
        unread_dirty: false,
        pushed_unread: HashMap::new(),
        next_tick: None,
        next_prune: None,
        last_active: Instant::now(),
        applied: None,
        parked: Vec::new(),
    };
    room.load();
    // In cluster mode retention runs as records are applied, with their
    // time (the same on every node), never on a timer.
    if room.env.ctx.cluster.is_none() && room.retention_by_age().is_some() {
        room.next_prune = Some(Instant::now());
    }
    let mut lookahead: Option<Cmd> = None;
    loop {
        let first = match lookahead.take() {
            Some(cmd) => cmd,
            None => match room.wait(&mut rx).await {
                Some(cmd) => cmd,
                None => break,
            },
        };
        if !matches!(first, Cmd::Prune) {
            room.last_active = Instant::now();
        }
        let mut turn = Turn::default();
        if let Some(state) = &mut room.state {
            state.begin_turn();
        }
        room.handle(first, &mut turn);
        while turn.cmds < MAX_TURN {
            match rx.try_recv() {
                Ok(cmd) if cmd.is_barrier() => {
                    lookahead = Some(cmd);
                    break;
                }
                Ok(cmd) => room.handle(cmd, &mut turn),
                Err(_) => break,
            }
        }
        room.commit(turn).await;
        if !room.parked.is_empty() {
            room.resume_parked(Instant::now()).await;
        }
    }
    tracing::debug!(room = %room.env.id, "room task stopped");
}

impl Room {
    fn load(&mut self) {
        let applied = match &self.env.ctx.cluster {
            Some(_) => repo::applied(&*self.env.ctx.store, &self.env.id),
            None => Ok(None),
        };
        match State::load(&self.env).and_then(|state| Ok((state, applied?))) {
            Ok((state, applied)) => {
                self.state = state;
                self.applied = applied;
                self.broken = None;
            }
            Err(e) => {
                tracing::error!(room = %self.env.id, error = %e, "cannot load room");
                self.state = None;
                self.broken = Some(e.to_string());
            }
        }
    }

    /// How often age retention runs, if it is configured.
    fn retention_by_age(&self) -> Option<Duration> {
        retention::interval(self.env.ctx.config.retention_max_age_secs)
    }

    /// The next command; publishes coalesced events, ends presence and
    /// typing entries, and stops when idle in between. `None`: stop.
    async fn wait(&mut self, rx: &mut mpsc::Receiver<Cmd>) -> Option<Cmd> {
        let config = &self.env.ctx.config;
        let idle = Duration::from_secs(config.room_idle_secs);
        loop {
            let tick = self.next_tick;
            let parked = self.parked.iter().map(|p| p.until).min();
            let wake = [tick, self.channels.next_deadline(), self.next_prune, parked]
                .into_iter()
                .flatten()
                .min();
            let idle_now = self.channels.is_idle() && tick.is_none() && self.parked.is_empty();
            let far = Instant::now() + Duration::from_secs(86_400);
            tokio::select! {
                cmd = rx.recv() => return cmd,
                _ = tokio::time::sleep_until(wake.unwrap_or(far)), if wake.is_some() => {
                    let now = Instant::now();
                    if tick.is_some_and(|t| t <= now) {
                        self.publish_coalesced();
                    }
                    self.channels.expire(now);
                    self.share_presence();
                    if parked.is_some_and(|t| t <= now) {
                        self.resume_parked(now).await;
                    }
                    if self.next_prune.is_some_and(|t| t <= now) {
                        self.next_prune = self.retention_by_age().map(|every| now + every);
                        return Some(Cmd::Prune);
                    }
                }
                _ = tokio::time::sleep_until(self.last_active + idle), if idle_now => {
                    if self.env.ctx.retire(&self.env.id, rx) {
                        return None;
                    }
                }
            }
        }
    }

    fn handle(&mut self, cmd: Cmd, turn: &mut Turn) {
        turn.cmds += 1;
        let cmd = match cmd {
            Cmd::Log(applied) => return self.apply(*applied, turn),
            Cmd::RemotePresence { node, user, online } => {
                return turn.outs.push(Out::RemotePresence { node, user, online })
            }
            Cmd::Subscribe {
                sub,
                request,
                channel,
            } => match self.resume_ahead(&request, channel) {
                Some(seq) => {
                    let until = Instant::now() + RESUME_WAIT;
                    tracing::debug!(room = %self.env.id, seq, "resume beyond the replica's head waits");
                    return self.parked.push(Parked {
                        sub,
                        request,
                        seq,
                        until,
                    });
                }
                None => Cmd::Subscribe {
                    sub,
                    request,
                    channel,
                },
            },
            Cmd::Unsubscribe { session_id, id } => {
                self.parked
                    .retain(|p| p.sub.session_id != session_id || p.sub.id != id);
                Cmd::Unsubscribe { session_id, id }
            }
            cmd => cmd,
        };
        self.run_cmd(cmd, turn);
    }

    /// Runs a command that is not a log record.
    fn run_cmd(&mut self, cmd: Cmd, turn: &mut Turn) {
        match (&mut self.state, cmd) {
            (None, Cmd::Init(room, caller)) if self.broken.is_none() => {
                let state = State::create(&self.env, *room, &caller, turn);
                self.state = Some(state);
            }
            (Some(state), cmd) => state.handle(&self.env, cmd, turn),
            (None, cmd) => {
                let error = match &self.broken {
                    Some(e) => format!("room {} is unavailable: {e}", self.env.id),
                    None => format!("no room {}", self.env.id),
                };
                refuse(&self.env, cmd, &error, turn);
            }
        }
    }

    /// Cluster mode: the cursor of a timeline resume in the room's epoch
    /// that is beyond what this replica applied (it is behind the node
    /// the client used before), if it should wait for the room to get
    /// there.
    fn resume_ahead(&self, request: &Request, channel: Channel) -> Option<u64> {
        let Request::Since {
            seq,
            epoch: Some(epoch),
        } = request
        else {
            return None;
        };
        let state = self.state.as_ref()?;
        let ahead = self.env.ctx.cluster.is_some()
            && channel == Channel::Timeline
            && *seq > state.meta.head
            && *epoch == state.meta.epoch
            && self.parked.len() < MAX_PARKED;
        ahead.then_some(*seq)
    }

    /// Cluster mode: replays and attaches, in a turn of their own, the
    /// waiting resumes whose cursor the room reached, whose room changed
    /// (gone, another epoch), or whose wait ended at `now` (answered as if
    /// they had not waited: `x-recovered:false`). Ends those whose
    /// session is gone.
    async fn resume_parked(&mut self, now: Instant) {
        let (head, epoch) = match &self.state {
            Some(state) => (state.meta.head, Some(state.meta.epoch.as_str())),
            None => (0, None),
        };
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.parked.len() {
            let p = &self.parked[i];
            let same_epoch = matches!(
                (&p.request, epoch),
                (Request::Since { epoch: Some(e), .. }, Some(now_epoch)) if e == now_epoch
            );
            if !p.sub.mailbox.is_open() {
                self.parked.swap_remove(i);
            } else if p.seq <= head || !same_epoch || p.until <= now {
                ready.push(self.parked.swap_remove(i));
            } else {
                i += 1;
            }
        }
        if ready.is_empty() {
            return;
        }
        // In arrival order.
        ready.sort_by_key(|p| p.until);
        let mut turn = Turn::default();
        if let Some(state) = &mut self.state {
            state.begin_turn();
        }
        for p in ready {
            turn.cmds += 1;
            let cmd = Cmd::Subscribe {
                sub: p.sub,
                request: p.request,
                channel: Channel::Timeline,
            };
            self.run_cmd(cmd, &mut turn);
        }
        self.commit(turn).await;
    }

    /// Applies one record of the cluster log: the command it carries,
    /// with its time, answered only on the node that appended it; then
    /// retention, at the same point on every node.
    fn apply(&mut self, applied: Applied, turn: &mut Turn) {
        let Applied {
            position,
            ts,
            ours,
            ephemeral,
            cmd,
        } = applied;
        if self.applied.is_some_and(|done| position.offset <= done) {
            // Stored before a restart: read again, not applied again.
            turn.applied.push(position);
            return;
        }
        if let Some(e) = &self.broken {
            // Not applied and not marked stored: the node reads it again
            // after a restart.
            let error = format!("room {} is unavailable: {e}", self.env.id);
            return refuse(&self.env, cmd, &error, turn);
        }
        let ttl = self.env.ctx.config.typing_ttl_ms;
        let stale = now_ms().saturating_sub(ts) > ttl.max(self.env.ctx.config.presence_grace_ms);
        if ephemeral && stale && !ours {
            // A stale typing or presence record (a node catching up, or
            // read again after a restart); the origin's own is applied:
            // its client waits for the answer.
            turn.applied.push(position);
            return;
        }
        let start = turn.outs.len();
        turn.clock = Some(ts);
        let head = self.state.as_ref().map(|s| s.meta.head);
        match (&mut self.state, cmd) {
            (_, Cmd::RemotePresence { node, user, online }) => {
                if !ours {
                    turn.outs.push(Out::RemotePresence { node, user, online });
                }
            }
            (None, Cmd::Init(room, caller)) => {
                turn.dir.push(DirOp::Room(room.meta.clone()));
                self.state = Some(State::create(&self.env, *room, &caller, turn));
            }
            (Some(state), Cmd::Init(room, caller)) => {
                state.created_again(&self.env, room.meta.kind, caller, turn)
            }
            (Some(state), cmd) => state.handle(&self.env, cmd, turn),
            (None, cmd) => {
                let error = format!("no room {}", self.env.id);
                refuse(&self.env, cmd, &error, turn);
            }
        }
        let config = &self.env.ctx.config;
        let retains = config.retention_max_events > 0 || config.retention_max_age_secs > 0;
        if let Some(state) = &mut self.state {
            if retains && head != Some(state.meta.head) {
                state.prune(&self.env, turn);
            }
        }
        turn.clock = None;
        if !ours {
            // Another node's record, or this node's from before it started
            // again (read again while it rebuilds): that node told, or
            // should have told, the offline hooks.
            for out in &mut turn.outs[start..] {
                if let Out::Live(message) = out {
                    *out = Out::Replica(Arc::clone(message));
                }
            }
        }
        turn.applied.push(position);
        if !ephemeral && self.state.is_some() {
            turn.applied_offset = Some(position.offset);
        }
    }

    /// Cluster mode: records the log bookkeeping in the turn's writes —
    /// the room's applied offset and its partition's watermark (every
    /// record below it stored; it may lag, never lead).
    fn write_log_positions(&self, turn: &mut Turn) {
        let Some(cluster) = &self.env.ctx.cluster else {
            return;
        };
        if let (Some(offset), Some(_)) = (turn.applied_offset, &self.state) {
            repo::write::applied(&mut turn.ops, &self.env.id, offset);
        }
        if turn.ops.is_empty() {
            return;
        }
        let mut partitions: Vec<u32> = turn.applied.iter().map(|p| p.partition).collect();
        partitions.sort_unstable();
        partitions.dedup();
        for partition in partitions {
            let mark = cluster.track.watermark(partition);
            repo::write::watermark(&mut turn.ops, partition, mark);
        }
    }

    /// Cluster mode: the turn's records are stored.
    fn log_positions_stored(&mut self, turn: &mut Turn) {
        let Some(cluster) = &self.env.ctx.cluster else {
            return;
        };
        for p in turn.applied.drain(..) {
            cluster.track.done(p.partition, p.offset);
        }
        if turn.applied_offset.is_some() {
            self.applied = self.applied.max(turn.applied_offset);
        }
    }

    /// Stores the turn's writes (one flush), then applies its effects.
    async fn commit(&mut self, mut turn: Turn) {
        let config = &self.env.ctx.config;
        let retains = config.retention_max_events > 0 || config.retention_max_age_secs > 0;
        let cluster = self.env.ctx.cluster.is_some();
        if turn.meta_dirty && retains && !cluster {
            if let Some(state) = &mut self.state {
                state.prune(&self.env, &mut turn);
            }
        }
        if turn.pruned && !cluster {
            // A full batch: the rest follows soon, in turns of its own.
            self.next_prune = Some(Instant::now());
        }
        if turn.meta_dirty {
            if let Some(state) = &self.state {
                repo::write::meta(&mut turn.ops, &state.meta);
            }
        }
        if cluster {
            self.write_log_positions(&mut turn);
        }
        if !turn.ops.is_empty() {
            let store = &self.env.ctx.store;
            let stored = match store.apply(std::mem::take(&mut turn.ops)) {
                Ok(()) => store.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = stored {
                self.fail_turn(turn, &e);
                return;
            }
        }
        if cluster {
            self.log_positions_stored(&mut turn);
        }
        if let Some(state) = &self.state {
            let mut dir = self.env.ctx.dir_mut();
            for op in turn.dir.drain(..) {
                match op {
                    DirOp::Room(meta) => dir.insert_room(&meta, Vec::new()),
                    DirOp::Member(user, member) => dir.set_member(&self.env.id, &user, member),
                }
            }
            if turn.meta_dirty {
                dir.set_counters(&self.env.id, state.meta.head, state.meta.msg_count);
            }
        }
        for (user, seq) in turn.receipts {
            self.receipts.insert(user, seq);
        }
        self.unread_dirty |= turn.unread_changed;
        if (!self.receipts.is_empty() || self.unread_dirty) && self.next_tick.is_none() {
            let wait = Duration::from_millis(self.env.ctx.config.coalesce_ms);
            self.next_tick = Some(Instant::now() + wait);
        }
        for out in turn.outs {
            self.emit(out);
        }
        self.share_presence();
    }

    /// Cluster mode: tells the other nodes who came and went here.
    fn share_presence(&mut self) {
        if self.channels.shared.is_empty() {
            return;
        }
        let Some(cluster) = &self.env.ctx.cluster else {
            self.channels.shared.clear();
            return;
        };
        for (user, present) in self.channels.shared.drain(..) {
            cluster.publish(&self.env.id, &user, LogOp::Presence(present));
        }
    }

    /// A turn whose writes could not be stored: every caller learns it,
    /// nothing is delivered, and the room reloads what is stored.
    fn fail_turn(&mut self, turn: Turn, e: &StoreError) {
        tracing::error!(room = %self.env.id, error = %e, "cannot store a turn");
        let error = format!("not stored: {e}");
        for out in turn.outs {
            match out {
                Out::Receipt(mailbox, id, _) => {
                    let mut headers = Headers::new();
                    headers.push("x-error", error.clone());
                    mailbox.receipt(id, headers);
                }
                Out::Reply { to, command, .. } => {
                    to.error(&*self.env.ctx.services, command, &error)
                }
                _ => {}
            }
        }
        if self.env.ctx.cluster.is_some() {
            // The replica missed records: it serves nothing more until a
            // restart reads them again (their watermark stays before them).
            self.state = None;
            self.broken = Some(format!("not stored ({e}); the node needs a restart"));
            return;
        }
        self.load();
        if self.state.is_none() {
            self.env.ctx.dir_mut().remove_room(&self.env.id);
        }
    }

    fn emit(&mut self, out: Out) {
        let services = &*self.env.ctx.services;
        let inbox = &self.env.ctx.config.inbox;
        match out {
            Out::Replica(message) => self.channels.live(&message),
            Out::RemotePresence { node, user, online } => {
                self.channels.remote_presence(&node, &user, online)
            }
            Out::Live(message) => {
                self.channels.live(&message);
                if !self.env.ctx.offline_hooks.is_empty()
                    && message.headers.get("x-event") == Some("message")
                {
                    self.tell_offline(&message);
                }
            }
            Out::Receipt(mailbox, id, headers) => {
                mailbox.receipt(id, headers);
            }
            Out::Reply {
                to,
                event,
                command,
                mut headers,
                body,
            } => {
                if !headers.contains("x-room") {
                    headers.push("x-room", self.env.id.clone());
                }
                to.send(services, event, command, headers, body);
            }
            Out::Forward(to, message) => to.forward(services, message),
            Out::Notify(user, headers, body) => notify(services, &user, inbox, headers, body),
            Out::Deliver(sub, message) => {
                sub.mailbox.deliver_reliably(sub.id, message);
            }
            Out::Attach(sub, channel) => self.channels.attach(sub, channel),
            Out::Typing(user, typing) => self.channels.set_typing(&user, typing),
            Out::Detach(session, id) => self.channels.detach(session, &id),
            Out::Evict(user) => self.channels.evict(&user),
        }
    }

    /// Hands a stored message to the offline hooks with the members who
    /// have no session.
    fn tell_offline(&self, message: &Message) {
        let Some(state) = &self.state else {
            return;
        };
        let h = |name| message.headers.get(name);
        let sender = h("x-sender").unwrap_or("");
        let members = state
            .members
            .iter()
            .filter(|(user, m)| m.role.is_member() && user.as_str() != sender)
            .map(|(user, _)| user);
        let users = self.env.ctx.online.offline(members);
        if users.is_empty() {
            return;
        }
        let number = |name| h(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        let notice = OfflineMessage {
            room: self.env.id.clone(),
            room_name: state.meta.name.clone(),
            seq: number("x-seq"),
            sender: sender.to_owned(),
            timestamp: number("x-timestamp"),
            users,
            content_type: h("content-type").map(str::to_owned),
            body: message.body.clone(),
        };
        for hook in &self.env.ctx.offline_hooks {
            hook.offline_message(&notice);
        }
    }

    /// Publishes the gathered read markers on `/room/{id}/receipts` and
    /// pushes changed unread counts to the members' inboxes.
    fn publish_coalesced(&mut self) {
        self.next_tick = None;
        let Some(state) = &self.state else {
            self.receipts.clear();
            self.unread_dirty = false;
            return;
        };
        if !self.receipts.is_empty() {
            let markers = std::mem::take(&mut self.receipts);
            let message = Arc::new(receipts_message(&self.env, &state.meta, &markers));
            self.channels.receipts(&message);
        }
        if std::mem::take(&mut self.unread_dirty) {
            let services = &*self.env.ctx.services;
            let inbox = &self.env.ctx.config.inbox;
            for (user, member) in &state.members {
                if !member.role.is_member() {
                    continue;
                }
                let unread = state.meta.msg_count.saturating_sub(member.read_index);
                if self.pushed_unread.get(user) == Some(&unread) {
                    continue;
                }
                self.pushed_unread.insert(user.clone(), unread);
                let headers = unread_headers(&self.env.id, &state.meta, member);
                notify(services, user, inbox, headers, Bytes::new());
            }
        }
    }
}

/// The inbox notice of a member's unread count in a room.
pub fn unread_headers(room: &str, meta: &RoomMeta, member: &Member) -> Headers {
    let mut headers = Headers::new();
    headers.push("x-event", "unread");
    headers.push("x-room", room.to_owned());
    headers.push(
        "x-unread",
        meta.msg_count.saturating_sub(member.read_index).to_string(),
    );
    headers.push("x-read-seq", member.read_seq.to_string());
    headers.push("x-head-seq", meta.head.to_string());
    headers
}

/// A `receipts` event: the markers as a JSON object `{user: seq}`.
pub fn receipts_message(env: &Env, meta: &RoomMeta, markers: &BTreeMap<String, u64>) -> Message {
    let mut headers = Headers::new();
    headers.push("x-event", "receipts");
    headers.push("x-room", env.id.clone());
    headers.push("x-epoch", meta.epoch.clone());
    headers.push("content-type", "application/json");
    let body = serde_json::to_vec(markers).unwrap_or_default();
    Message::new(
        ByteString::from(format!("{}/receipts", env.dest)),
        headers,
        Bytes::from(body),
    )
}

/// Answers a command for a room that is not there.
fn refuse(env: &Env, cmd: Cmd, error: &str, turn: &mut Turn) {
    let (caller, command) = match cmd {
        Cmd::Init(_, c) => (c, "create"),
        Cmd::Post { caller, .. } => (caller, "post"),
        Cmd::Relate {
            caller, relation, ..
        } => (caller, relation.command()),
        Cmd::Join(c) => (c, "join"),
        Cmd::Typing(c, _) => (c, "typing"),
        Cmd::Prune => return,
        Cmd::Leave(c) => (c, "leave"),
        Cmd::Invite(c, _) => (c, "invite"),
        Cmd::Kick(c, _) => (c, "kick"),
        Cmd::SetRole(c, ..) => (c, "role"),
        Cmd::Read(c, ..) => (c, "read"),
        Cmd::History(c, _) => (c, "history"),
        Cmd::Info(c) => (c, "info"),
        Cmd::Subscribe { sub, .. } => {
            turn.outs
                .push(Out::Deliver(sub, Arc::new(denied(&env.dest, error))));
            return;
        }
        Cmd::Unsubscribe { session_id, id } => {
            turn.outs.push(Out::Detach(session_id, id));
            return;
        }
        Cmd::Log(applied) => return refuse(env, applied.cmd, error, turn),
        Cmd::RemotePresence { .. } => return,
    };
    turn.fail(&caller, command, error);
}

/// The one MESSAGE a refused subscription gets.
pub fn denied(destination: &ByteString, error: &str) -> Message {
    let mut headers = Headers::new();
    headers.push("x-event", "denied");
    headers.push("x-error", error.to_owned());
    Message::new(destination.clone(), headers, Bytes::new())
}

/// Every member of `members`, sorted, as `[{user, role, read_seq}]`.
pub fn members_json(members: &HashMap<String, Member>) -> serde_json::Value {
    let sorted: BTreeMap<_, _> = members.iter().collect();
    serde_json::Value::Array(
        sorted
            .into_iter()
            .map(|(user, m)| {
                serde_json::json!({
                    "user": user,
                    "role": m.role.as_str(),
                    "read_seq": m.shown_seq,
                })
            })
            .collect(),
    )
}
