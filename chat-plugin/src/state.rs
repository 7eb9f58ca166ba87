//! A loaded room and the rules of its commands: membership, posting with
//! dedupe, read markers, history pages and replay on SUBSCRIBE. Handlers
//! only record writes and effects in the [`Turn`]; the room task stores
//! and applies them.

use crate::actor::{denied, members_json, receipts_message, DirOp, Env, Out, Turn};
use crate::record::{Event, EventKind, Member, Role, RoomKind, RoomMeta};
use crate::repo::{self, StoredRoom};
use crate::rooms::{Caller, Channel, Cmd, HistoryQuery, Sub};
use crate::store::StoreError;
use crate::{replay, timeline};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use stompede_codec::Headers;
use stompede_plugin::Message;

/// Recent client message ids kept in memory before the store is asked.
const RECENT_IDS: usize = 50_000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A room in its task.
#[derive(Debug)]
pub struct State {
    /// Description and counters.
    pub meta: RoomMeta,
    /// Members and invitees.
    pub members: HashMap<String, Member>,
    /// The oldest stored sequence number (`head + 1` when none).
    pub low: u64,
    /// The newest event's time (timestamps never go back).
    last_ts: u64,
    /// `(sender, client msg id) → seq` of recent posts.
    recent: HashMap<(String, String), u64>,
}

/// A new event, before it gets its sequence number.
#[derive(Debug)]
pub struct Draft {
    kind: EventKind,
    sender: String,
    target: Option<String>,
    client_msg_id: Option<String>,
    relates_to: Option<u64>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Draft {
    /// An event of `kind` caused by `sender`, with no body.
    pub fn new(kind: EventKind, sender: &str) -> Draft {
        Draft {
            kind,
            sender: sender.to_owned(),
            target: None,
            client_msg_id: None,
            relates_to: None,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The member it is about.
    pub fn target(mut self, target: Option<String>) -> Draft {
        self.target = target;
        self
    }

    /// The sender's idempotency key.
    pub fn client_msg_id(mut self, id: Option<String>) -> Draft {
        self.client_msg_id = id;
        self
    }

    /// The event it is about (edit, redaction, reaction).
    pub fn relates_to(mut self, seq: u64) -> Draft {
        self.relates_to = Some(seq);
        self
    }

    /// The client's headers.
    pub fn headers(mut self, headers: Vec<(String, String)>) -> Draft {
        self.headers = headers;
        self
    }

    /// The body.
    pub fn body(mut self, body: Bytes) -> Draft {
        self.body = body;
        self
    }

    /// Another kind.
    pub fn kind(mut self, kind: EventKind) -> Draft {
        self.kind = kind;
        self
    }

    /// Adds a header (a server-set one, such as `x-reaction`).
    pub fn header(mut self, name: &str, value: &str) -> Draft {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The sender's idempotency key, if any.
    pub fn client_id(&self) -> Option<&str> {
        self.client_msg_id.as_deref()
    }
}

pub(crate) fn headers(pairs: &[(&'static str, String)]) -> Headers {
    pairs.iter().map(|(n, v)| (*n, v.clone())).collect()
}

fn json(value: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

impl State {
    /// The stored room, if there is one.
    pub fn load(env: &Env) -> Result<Option<State>, StoreError> {
        let store = &*env.ctx.store;
        let Some(stored) = repo::load_room(store, &env.id)? else {
            return Ok(None);
        };
        let meta = stored.meta;
        let low = repo::first_seq(store, &env.id)?.unwrap_or(meta.head + 1);
        let last_ts = match meta.head {
            0 => 0,
            head => repo::event(store, &env.id, head)?.map_or(0, |e| e.ts),
        };
        Ok(Some(State {
            meta,
            members: stored.members.into_iter().collect(),
            low,
            last_ts,
            recent: HashMap::new(),
        }))
    }

    /// A new room: its `create` event, then a `join` (or `invite`) event
    /// for each initial member.
    pub fn create(env: &Env, room: StoredRoom, caller: &Caller, turn: &mut Turn) -> State {
        let mut state = State {
            meta: room.meta,
            members: HashMap::new(),
            low: 1,
            last_ts: 0,
            recent: HashMap::new(),
        };
        let body = json(serde_json::json!({
            "name": state.meta.name,
            "kind": state.meta.kind.as_str(),
            "public": state.meta.public,
        }));
        let creator = caller.user.clone();
        state.append(
            env,
            turn,
            Draft::new(EventKind::Create, &creator).body(body),
        );
        // Everyone starts having read the room's opening events.
        let opened = state.meta.head + room.members.len() as u64;
        for (user, mut member) in room.members {
            member.read_seq = opened;
            member.shown_seq = opened;
            let kind = if member.role.is_member() {
                EventKind::Join
            } else {
                EventKind::Invite
            };
            state.set_member(env, turn, &user, Some(member));
            state.append(
                env,
                turn,
                Draft::new(kind, &creator).target(Some(user.clone())),
            );
            // Every session of every user learns of the room from the
            // inbox, the creator's other sessions (tabs) too.
            let event = if user == creator {
                "created"
            } else if member.role.is_member() {
                "added"
            } else {
                "invited"
            };
            state.notify(env, turn, &user, event, &creator);
        }
        let h = headers(&[
            ("x-room", env.id.clone()),
            ("x-seq", state.meta.head.to_string()),
            ("x-epoch", state.meta.epoch.clone()),
            ("x-created", "true".into()),
        ]);
        let body = json(serde_json::json!({ "room": env.id, "created": true }));
        turn.ok(caller, "create", h, Some(body));
        state
    }

    /// Called before each turn: forgets the recent client message ids
    /// when there are too many (never within a turn, so the ids of the
    /// turn's own, not yet stored, posts are always known).
    pub fn begin_turn(&mut self) {
        if self.recent.len() >= RECENT_IDS {
            self.recent.clear();
        }
    }

    pub(crate) fn is_member(&self, user: &str) -> bool {
        self.members.get(user).is_some_and(|m| m.role.is_member())
    }

    /// Stores an event and queues its live delivery.
    pub(crate) fn append(&mut self, env: &Env, turn: &mut Turn, draft: Draft) -> Event {
        let Draft {
            kind,
            sender,
            target,
            client_msg_id,
            relates_to,
            headers,
            body,
        } = draft;
        self.meta.head += 1;
        if kind == EventKind::Message {
            self.meta.msg_count += 1;
        }
        self.last_ts = turn.clock.unwrap_or_else(now_ms).max(self.last_ts);
        if self.low > self.meta.head {
            self.low = self.meta.head;
        }
        let event = Event {
            seq: self.meta.head,
            ts: self.last_ts,
            kind,
            sender,
            target,
            client_msg_id,
            msg_index: self.meta.msg_count,
            headers,
            body,
            relates_to,
            redacted_by: None,
        };
        repo::write::event(&mut turn.ops, &env.id, &event);
        turn.meta_dirty = true;
        if let Some(id) = &event.client_msg_id {
            self.recent
                .insert((event.sender.clone(), id.clone()), event.seq);
        }
        turn.outs.push(Out::Live(timeline::live(
            &env.dest,
            &env.id,
            &self.meta.epoch,
            &event,
        )));
        event
    }

    fn set_member(&mut self, env: &Env, turn: &mut Turn, user: &str, member: Option<Member>) {
        repo::write::member(&mut turn.ops, &env.id, user, member.as_ref());
        match member {
            Some(m) => self.members.insert(user.to_owned(), m),
            None => self.members.remove(user),
        };
        turn.dir.push(DirOp::Member(user.to_owned(), member));
    }

    /// An inbox notice about this room for `user`.
    fn notify(&self, env: &Env, turn: &mut Turn, user: &str, event: &'static str, by: &str) {
        let h = headers(&[
            ("x-event", event.into()),
            ("x-room", env.id.clone()),
            ("x-sender", by.to_owned()),
            ("x-kind", self.meta.kind.as_str().into()),
            ("x-name", self.meta.name.clone()),
        ]);
        turn.outs
            .push(Out::Notify(user.to_owned(), h, Bytes::new()));
    }

    /// Runs one command.
    pub fn handle(&mut self, env: &Env, cmd: Cmd, turn: &mut Turn) {
        match cmd {
            Cmd::Init(_, caller) => turn.fail(&caller, "create", "the room exists"),
            Cmd::Post {
                caller,
                headers,
                body,
                client_msg_id,
            } => self.post(env, turn, &caller, headers, body, client_msg_id),
            Cmd::Relate {
                caller,
                relation,
                to,
                headers,
                body,
                client_msg_id,
            } => {
                let draft = Draft::new(EventKind::Message, &caller.user)
                    .relates_to(to)
                    .client_msg_id(client_msg_id)
                    .headers(headers)
                    .body(body);
                self.relate(env, turn, &caller, relation, to, draft)
            }
            Cmd::Join(caller) => self.join(env, turn, &caller),
            Cmd::Leave(caller) => self.leave(env, turn, &caller),
            Cmd::Invite(caller, user) => self.invite(env, turn, &caller, &user),
            Cmd::Kick(caller, user) => self.kick(env, turn, &caller, &user),
            Cmd::SetRole(caller, user, role) => self.set_role(env, turn, &caller, &user, role),
            Cmd::Read(caller, seq, private) => self.read(env, turn, &caller, seq, private),
            Cmd::History(caller, query) => self.history(env, turn, &caller, query),
            Cmd::Info(caller) => self.info(env, turn, &caller),
            Cmd::Subscribe {
                sub,
                request,
                channel,
            } => self.subscribe(env, turn, sub, &request, channel),
            Cmd::Prune => self.prune(env, turn),
            Cmd::Typing(caller, typing) => {
                if !self.is_member(&caller.user) {
                    return self.not_member(env, turn, &caller, "typing");
                }
                turn.outs.push(Out::Typing(caller.user.clone(), typing));
                turn.ok(&caller, "typing", Headers::new(), None);
            }
            Cmd::Unsubscribe { session_id, id } => turn.outs.push(Out::Detach(session_id, id)),
            // Taken apart by the room task before they get here.
            Cmd::Log(_) | Cmd::RemotePresence { .. } => {}
        }
    }

    /// Cluster mode: a `/rooms/create` record for a room that exists. A
    /// direct room answers `x-created:false` to its users, and brings back
    /// one who left; a group refuses.
    pub fn created_again(&mut self, env: &Env, kind: RoomKind, caller: Caller, turn: &mut Turn) {
        let role = self.members.get(&caller.user).map(|m| m.role);
        match role {
            Some(Role::Invited) if kind == RoomKind::Direct && self.meta.kind == kind => {
                self.handle(env, Cmd::Join(caller), turn)
            }
            Some(_) if kind == RoomKind::Direct && self.meta.kind == kind => {
                let h = headers(&[("x-room", env.id.clone()), ("x-created", "false".into())]);
                let body = json(serde_json::json!({ "room": env.id, "created": false }));
                turn.ok(&caller, "create", h, Some(body));
            }
            _ => turn.fail(&caller, "create", &format!("room {} exists", env.id)),
        }
    }

    /// Answers a repeated client message id with the sequence number the
    /// first one got (`x-duplicate:true`), or a lookup failure; true if
    /// the command was answered so.
    pub(crate) fn answered_before(
        &self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        command: &'static str,
        client_msg_id: Option<&str>,
    ) -> bool {
        let Some(id) = client_msg_id else {
            return false;
        };
        let known = match self.recent.get(&(caller.user.clone(), id.to_owned())) {
            Some(seq) => Ok(Some(*seq)),
            None => {
                // Cluster mode: through the turn's writes (retention may
                // have deleted the record in this turn), so the answer does
                // not depend on how a node grouped records into turns.
                let pending = match env.ctx.cluster {
                    Some(_) => turn.ops.as_slice(),
                    None => &[],
                };
                repo::deduped(&*env.ctx.store, pending, &env.id, &caller.user, id)
            }
        };
        match known {
            Ok(Some(seq)) => {
                let h = headers(&[
                    ("x-seq", seq.to_string()),
                    ("x-epoch", self.meta.epoch.clone()),
                    ("x-duplicate", "true".into()),
                ]);
                turn.ok(caller, command, h, None);
                true
            }
            Ok(None) => false,
            Err(e) => {
                turn.fail(caller, command, &e.to_string());
                true
            }
        }
    }

    /// Forgets a deleted post's client message id.
    pub(crate) fn forget_client_id(&mut self, sender: &str, client_msg_id: &str) {
        self.recent
            .remove(&(sender.to_owned(), client_msg_id.to_owned()));
    }

    pub(crate) fn not_member(
        &self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        command: &'static str,
    ) {
        turn.fail(caller, command, &format!("not a member of room {}", env.id));
    }

    fn post(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        caller: &Caller,
        client_headers: Vec<(String, String)>,
        body: Bytes,
        client_msg_id: Option<String>,
    ) {
        if !self.is_member(&caller.user) {
            return self.not_member(env, turn, caller, "post");
        }
        if self.answered_before(env, turn, caller, "post", client_msg_id.as_deref()) {
            return;
        }
        let event = self.append(
            env,
            turn,
            Draft::new(EventKind::Message, &caller.user)
                .client_msg_id(client_msg_id)
                .headers(client_headers)
                .body(body),
        );
        // The sender has read what they wrote, and others see it: the
        // marker moves like an explicit read, so a read marker the client
        // sends afterwards for earlier events (ignored: markers never go
        // back) loses nothing.
        if let Some(member) = self.members.get(&caller.user).copied() {
            let read = Member {
                read_seq: event.seq,
                read_index: event.msg_index,
                shown_seq: event.seq,
                ..member
            };
            self.set_member(env, turn, &caller.user, Some(read));
            turn.receipts.push((caller.user.clone(), event.seq));
        }
        turn.unread_changed = true;
        let h = headers(&[
            ("x-seq", event.seq.to_string()),
            ("x-epoch", self.meta.epoch.clone()),
        ]);
        turn.ok(caller, "post", h, None);
    }

    fn join(&mut self, env: &Env, turn: &mut Turn, caller: &Caller) {
        let user = caller.user.as_str();
        match self.members.get(user).map(|m| m.role) {
            Some(role) if role.is_member() => {
                let h = headers(&[
                    ("x-seq", self.meta.head.to_string()),
                    ("x-already", "true".into()),
                ]);
                return turn.ok(caller, "join", h, None);
            }
            Some(Role::Invited) => {}
            None if self.meta.kind == RoomKind::Group && self.meta.public => {}
            None => return turn.fail(caller, "join", &format!("not invited to room {}", env.id)),
            Some(_) => {}
        }
        let member = Member {
            read_seq: self.meta.head,
            read_index: self.meta.msg_count,
            shown_seq: self.meta.head,
            ..Member::new(Role::Member)
        };
        self.set_member(env, turn, user, Some(member));
        turn.receipts.push((user.to_owned(), member.shown_seq));
        let event = self.append(env, turn, Draft::new(EventKind::Join, user));
        self.notify(env, turn, user, "joined", user);
        let h = headers(&[
            ("x-seq", event.seq.to_string()),
            ("x-epoch", self.meta.epoch.clone()),
        ]);
        turn.ok(caller, "join", h, None);
    }

    fn leave(&mut self, env: &Env, turn: &mut Turn, caller: &Caller) {
        let user = caller.user.as_str();
        if !self.is_member(user) {
            return self.not_member(env, turn, caller, "leave");
        }
        let event = self.append(env, turn, Draft::new(EventKind::Leave, user));
        // A direct room's users may come back; a group's leavers need an
        // invite (or a public room) again.
        let after = match self.meta.kind {
            RoomKind::Direct => Some(Member::new(Role::Invited)),
            RoomKind::Group => None,
        };
        self.set_member(env, turn, user, after);
        turn.outs.push(Out::Evict(user.to_owned()));
        self.notify(env, turn, user, "left", user);
        let h = headers(&[("x-seq", event.seq.to_string())]);
        turn.ok(caller, "leave", h, None);
    }

    fn invite(&mut self, env: &Env, turn: &mut Turn, caller: &Caller, target: &str) {
        let Some(role) = self.members.get(&caller.user).map(|m| m.role) else {
            return self.not_member(env, turn, caller, "invite");
        };
        if !role.is_member() {
            return self.not_member(env, turn, caller, "invite");
        }
        if self.meta.kind == RoomKind::Direct {
            return turn.fail(caller, "invite", "direct rooms have exactly two users");
        }
        if !self.meta.public && !role.moderates() {
            return turn.fail(
                caller,
                "invite",
                "only the owner and moderators invite to a private room",
            );
        }
        if self.members.contains_key(target) {
            let h = headers(&[("x-already", "true".into())]);
            return turn.ok(caller, "invite", h, None);
        }
        self.set_member(env, turn, target, Some(Member::new(Role::Invited)));
        let event = self.append(
            env,
            turn,
            Draft::new(EventKind::Invite, &caller.user).target(Some(target.to_owned())),
        );
        self.notify(env, turn, target, "invited", &caller.user);
        let h = headers(&[("x-seq", event.seq.to_string())]);
        turn.ok(caller, "invite", h, None);
    }

    fn kick(&mut self, env: &Env, turn: &mut Turn, caller: &Caller, target: &str) {
        let role = self.members.get(&caller.user).map(|m| m.role);
        if !role.is_some_and(Role::moderates) {
            return turn.fail(caller, "kick", "only the owner and moderators kick");
        }
        let Some(target_role) = self.members.get(target).map(|m| m.role) else {
            return turn.fail(
                caller,
                "kick",
                &format!("{target} is not in room {}", env.id),
            );
        };
        if target == caller.user || Some(target_role) >= role {
            return turn.fail(caller, "kick", &format!("{target} cannot be kicked"));
        }
        let event = self.append(
            env,
            turn,
            Draft::new(EventKind::Kick, &caller.user).target(Some(target.to_owned())),
        );
        self.set_member(env, turn, target, None);
        turn.outs.push(Out::Evict(target.to_owned()));
        self.notify(env, turn, target, "kicked", &caller.user);
        let h = headers(&[("x-seq", event.seq.to_string())]);
        turn.ok(caller, "kick", h, None);
    }

    /// The owner makes a member a moderator, or a moderator a member.
    fn set_role(&mut self, env: &Env, turn: &mut Turn, caller: &Caller, target: &str, role: Role) {
        if self.members.get(&caller.user).map(|m| m.role) != Some(Role::Owner) {
            return turn.fail(caller, "role", "only the owner promotes and demotes");
        }
        let Some(member) = self.members.get(target).copied() else {
            return turn.fail(
                caller,
                "role",
                &format!("{target} is not in room {}", env.id),
            );
        };
        if !matches!(member.role, Role::Member | Role::Moderator) {
            return turn.fail(
                caller,
                "role",
                &format!("{target} is {}, not a member", member.role.as_str()),
            );
        }
        if member.role == role {
            let h = headers(&[("x-already", "true".into())]);
            return turn.ok(caller, "role", h, None);
        }
        self.set_member(env, turn, target, Some(Member { role, ..member }));
        let event = self.append(
            env,
            turn,
            Draft::new(EventKind::Role, &caller.user)
                .target(Some(target.to_owned()))
                .header("x-role", role.as_str()),
        );
        let mut h = headers(&[
            ("x-event", "role".into()),
            ("x-room", env.id.clone()),
            ("x-sender", caller.user.clone()),
            ("x-kind", self.meta.kind.as_str().into()),
            ("x-name", self.meta.name.clone()),
        ]);
        h.push("x-role", role.as_str());
        turn.outs
            .push(Out::Notify(target.to_owned(), h, Bytes::new()));
        let h = headers(&[("x-seq", event.seq.to_string())]);
        turn.ok(caller, "role", h, None);
    }

    fn read(&mut self, env: &Env, turn: &mut Turn, caller: &Caller, seq: u64, private: bool) {
        let Some(member) = self.members.get(&caller.user).copied() else {
            return self.not_member(env, turn, caller, "read");
        };
        if !member.role.is_member() {
            return self.not_member(env, turn, caller, "read");
        }
        let seq = seq.min(self.meta.head);
        let mut next = member;
        if seq > member.read_seq {
            let index = match self.msg_index_at(env, turn, seq) {
                Ok(Some(index)) => index,
                Ok(None) => return turn.fail(caller, "read", &format!("no event {seq}")),
                Err(e) => return turn.fail(caller, "read", &e.to_string()),
            };
            next.read_seq = seq;
            next.read_index = index;
        }
        if !private && seq > next.shown_seq {
            next.shown_seq = seq;
            turn.receipts.push((caller.user.clone(), seq));
        }
        if next != member {
            self.set_member(env, turn, &caller.user, Some(next));
            turn.unread_changed = true;
            let unread = self.meta.msg_count.saturating_sub(next.read_index);
            let h = headers(&[
                ("x-event", "read".into()),
                ("x-room", env.id.clone()),
                ("x-read-seq", next.read_seq.to_string()),
                ("x-unread", unread.to_string()),
                ("x-head-seq", self.meta.head.to_string()),
            ]);
            turn.outs
                .push(Out::Notify(caller.user.clone(), h, Bytes::new()));
        }
        let unread = self.meta.msg_count.saturating_sub(next.read_index);
        let h = headers(&[
            ("x-read-seq", next.read_seq.to_string()),
            ("x-unread", unread.to_string()),
        ]);
        turn.ok(caller, "read", h, None);
    }

    /// The room's `msg_count` once event `seq` was stored; for a seq
    /// retention deleted, the count just before the oldest kept event.
    fn msg_index_at(&self, env: &Env, turn: &Turn, seq: u64) -> Result<Option<u64>, StoreError> {
        let store = &*env.ctx.store;
        if seq == self.meta.head || self.low > self.meta.head {
            return Ok(Some(self.meta.msg_count));
        }
        if seq < self.low {
            return Ok(repo::pending_event(store, &turn.ops, &env.id, self.low)?
                .map(|e| e.msg_index - u64::from(e.kind == EventKind::Message)));
        }
        Ok(repo::pending_event(store, &turn.ops, &env.id, seq)?.map(|e| e.msg_index))
    }

    fn history(&mut self, env: &Env, turn: &mut Turn, caller: &Caller, q: HistoryQuery) {
        if !self.is_member(&caller.user) {
            return self.not_member(env, turn, caller, "history");
        }
        let (low, head) = (self.low, self.meta.head);
        let store = &*env.ctx.store;
        let page = match (q.after, q.before) {
            (Some(after), _) => repo::events(
                store,
                &env.id,
                after.saturating_add(1),
                head,
                false,
                q.limit,
            ),
            (None, Some(before)) => {
                repo::events(store, &env.id, low, before.saturating_sub(1), true, q.limit)
            }
            (None, None) => repo::events(store, &env.id, low, head, true, q.limit),
        };
        let mut page = match page {
            Ok(page) => page,
            Err(e) => return turn.fail(caller, "history", &e.to_string()),
        };
        if q.after.is_none() {
            page.reverse();
        }
        let (first, last) = match (page.first(), page.last()) {
            (Some(f), Some(l)) => (f.seq, l.seq),
            _ => (0, 0),
        };
        let more = match q.after {
            Some(_) => last != 0 && last < head,
            None => first > low,
        };
        let inbox = caller.reply.destination();
        for event in &page {
            let message = timeline::message(
                &inbox,
                &env.id,
                &self.meta.epoch,
                event,
                Some(("x-history", "true")),
            );
            turn.outs.push(Out::Forward(caller.reply.clone(), message));
        }
        let h = headers(&[
            ("x-count", page.len().to_string()),
            ("x-first-seq", first.to_string()),
            ("x-last-seq", last.to_string()),
            ("x-has-more", more.to_string()),
            ("x-head-seq", head.to_string()),
            ("x-low-seq", low.to_string()),
            ("x-epoch", self.meta.epoch.clone()),
        ]);
        if let Some(id) = &caller.receipt {
            turn.outs
                .push(Out::Receipt(caller.mailbox.clone(), id.clone(), h.clone()));
        }
        turn.outs.push(Out::Reply {
            to: caller.reply.clone(),
            event: "history-end",
            command: "history",
            headers: h,
            body: Bytes::new(),
        });
    }

    fn info(&mut self, env: &Env, turn: &mut Turn, caller: &Caller) {
        if !self.members.contains_key(&caller.user) {
            return self.not_member(env, turn, caller, "info");
        }
        let m = &self.meta;
        let body = json(serde_json::json!({
            "room": env.id,
            "kind": m.kind.as_str(),
            "name": m.name,
            "public": m.public,
            "epoch": m.epoch,
            "head": m.head,
            "low": self.low,
            "created_by": m.created_by,
            "created_at": m.created_at,
            "members": members_json(&self.members),
        }));
        let h = headers(&[
            ("x-epoch", m.epoch.clone()),
            ("x-head-seq", m.head.to_string()),
        ]);
        turn.ok(caller, "info", h, Some(body));
    }

    /// Replays what the SUBSCRIBE asks for, ends the replay with its
    /// marker and attaches the subscription, all in this turn: live
    /// messages of later turns follow without gap or duplicate.
    fn subscribe(
        &mut self,
        env: &Env,
        turn: &mut Turn,
        sub: Sub,
        request: &replay::Request,
        channel: Channel,
    ) {
        if !self.is_member(&sub.user) {
            let error = format!("not a member of room {}", env.id);
            turn.outs
                .push(Out::Deliver(sub, Arc::new(denied(&env.dest, &error))));
            return;
        }
        if matches!(channel, Channel::Presence | Channel::Typing) {
            turn.outs.push(Out::Attach(sub, channel));
            return;
        }
        if channel == Channel::Receipts {
            let markers: BTreeMap<String, u64> = self
                .members
                .iter()
                .filter(|(_, m)| m.role.is_member())
                .map(|(u, m)| (u.clone(), m.shown_seq))
                .collect();
            let snapshot = receipts_message(env, &self.meta, &markers);
            turn.outs
                .push(Out::Deliver(sub.clone(), Arc::new(snapshot)));
            turn.outs.push(Out::Attach(sub, channel));
            return;
        }
        let store = &*env.ctx.store;
        let bounds = replay::Bounds {
            epoch: &self.meta.epoch,
            low: self.low,
            head: self.meta.head,
            max: u64::try_from(env.ctx.config.max_replay).unwrap_or(u64::MAX),
        };
        let mut failure = None;
        let plan = replay::plan(request, bounds, |ms| {
            repo::seq_at_time(store, &[], &env.id, self.low, self.meta.head, ms).unwrap_or_else(
                |e| {
                    failure = Some(e.to_string());
                    self.meta.head + 1
                },
            )
        });
        let mut events = Vec::new();
        if failure.is_none() && !plan.is_empty() {
            let limit = usize::try_from(plan.len()).unwrap_or(usize::MAX);
            match repo::events(store, &env.id, plan.from, plan.to, false, limit) {
                Ok(found) if found.len() == limit => events = found,
                Ok(_) => failure = Some("history is incomplete".into()),
                Err(e) => failure = Some(e.to_string()),
            }
        }
        let recovered = plan.recovered && failure.is_none();
        for event in &events {
            let message = timeline::message(
                &env.dest,
                &env.id,
                &self.meta.epoch,
                event,
                Some(("x-replay", "true")),
            );
            turn.outs.push(Out::Deliver(sub.clone(), Arc::new(message)));
        }
        let mut h = headers(&[
            ("x-event", "replay-end".into()),
            ("x-recovered", recovered.to_string()),
            ("x-epoch", self.meta.epoch.clone()),
            ("x-head-seq", self.meta.head.to_string()),
            ("x-low-seq", self.low.to_string()),
            ("x-replayed", events.len().to_string()),
        ]);
        if let Some(e) = failure {
            h.push("x-error", e);
        }
        let marker = Message::new(env.dest.clone(), h, Bytes::new());
        turn.outs.push(Out::Deliver(sub.clone(), Arc::new(marker)));
        turn.outs.push(Out::Attach(sub, Channel::Timeline));
    }
}
