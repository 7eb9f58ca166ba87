//! A room's live subscriptions, by channel (timeline, receipts, presence,
//! typing), and the ephemeral state the presence and typing channels
//! show. Owned by the room task; nothing here is stored.

use crate::presence::{Delta, Presence};
use crate::rooms::Sub;
use crate::typing::Typing;
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use stompede_codec::Headers;
use stompede_plugin::Message;
use tokio::time::{Duration, Instant};

/// What a room subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/room/{id}`: the timeline.
    Timeline,
    /// `/room/{id}/receipts`: coalesced read markers.
    Receipts,
    /// `/room/{id}/presence`: who is in the room.
    Presence,
    /// `/room/{id}/typing`: who is typing.
    Typing,
}

/// The subscriptions of one room and its presence and typing state.
#[derive(Debug)]
pub struct Channels {
    /// `/room/{id}`.
    dest: ByteString,
    timeline: Vec<Sub>,
    receipts: Vec<Sub>,
    presence_subs: Vec<Sub>,
    typing_subs: Vec<Sub>,
    presence: Presence,
    typing: Typing,
    grace: Duration,
    ttl: Duration,
    /// Cluster mode: the users present through each other node.
    remote: BTreeMap<String, BTreeSet<String>>,
    /// Cluster mode: whether changes of local presence are kept in
    /// `shared` for the other nodes.
    share: bool,
    /// Changes of local presence (user, present) not yet sent to the log.
    pub shared: Vec<(String, bool)>,
}

/// Delivers `message` to each of `subs`, dropping those whose session is
/// gone; true if any was dropped.
fn fan_out(subs: &mut Vec<Sub>, message: &Arc<Message>) -> bool {
    let before = subs.len();
    subs.retain(|s| s.mailbox.deliver(s.id.clone(), Arc::clone(message)));
    subs.len() != before
}

impl Channels {
    /// No subscriptions yet, for room destination `dest`; a user stays
    /// present for `grace` after their last timeline subscription, a
    /// typing entry lasts `ttl`.
    pub fn new(dest: ByteString, grace: Duration, ttl: Duration) -> Channels {
        Channels {
            dest,
            timeline: Vec::new(),
            receipts: Vec::new(),
            presence_subs: Vec::new(),
            typing_subs: Vec::new(),
            presence: Presence::default(),
            typing: Typing::default(),
            grace,
            ttl,
            remote: BTreeMap::new(),
            share: false,
            shared: Vec::new(),
        }
    }

    /// Cluster mode: local presence changes are kept for the other nodes,
    /// and presence shows the users present through any node.
    pub fn share_presence(&mut self) {
        self.share = true;
    }

    /// Whether no one listens and nothing is pending.
    pub fn is_idle(&self) -> bool {
        self.timeline.is_empty()
            && self.receipts.is_empty()
            && self.presence_subs.is_empty()
            && self.typing_subs.is_empty()
            && self.next_deadline().is_none()
            && self.remote.is_empty()
    }

    /// A timeline MESSAGE for every timeline subscriber.
    pub fn live(&mut self, message: &Arc<Message>) {
        if fan_out(&mut self.timeline, message) {
            self.sync_presence();
        }
    }

    /// A receipts MESSAGE for every receipts subscriber.
    pub fn receipts(&mut self, message: &Arc<Message>) {
        fan_out(&mut self.receipts, message);
    }

    /// Adds a subscription; presence and typing subscribers first get a
    /// snapshot (reliably, before anything live).
    pub fn attach(&mut self, sub: Sub, channel: Channel) {
        match channel {
            Channel::Timeline => {
                self.timeline.push(sub);
                self.sync_presence();
            }
            Channel::Receipts => self.receipts.push(sub),
            Channel::Presence => {
                let snapshot = self.presence_message("snapshot", None);
                sub.mailbox.deliver_reliably(sub.id.clone(), snapshot);
                self.presence_subs.push(sub);
            }
            Channel::Typing => {
                sub.mailbox
                    .deliver_reliably(sub.id.clone(), self.typing_message());
                self.typing_subs.push(sub);
            }
        }
    }

    /// Removes one subscription.
    pub fn detach(&mut self, session: u64, id: &ByteString) {
        let keep = |s: &Sub| !(s.session_id == session && s.id == *id);
        let before = self.timeline.len();
        self.timeline.retain(keep);
        self.receipts.retain(keep);
        self.presence_subs.retain(keep);
        self.typing_subs.retain(keep);
        if self.timeline.len() != before {
            self.sync_presence();
        }
    }

    /// A user who is no longer a member: their subscriptions end, they
    /// leave the presence list at once and stop typing.
    pub fn evict(&mut self, user: &str) {
        for subs in [
            &mut self.timeline,
            &mut self.receipts,
            &mut self.presence_subs,
            &mut self.typing_subs,
        ] {
            subs.retain(|s| s.user != user);
        }
        for users in self.remote.values_mut() {
            users.remove(user);
        }
        self.remote.retain(|_, users| !users.is_empty());
        if let Some(delta) = self.presence.remove(user) {
            self.local_presence(delta);
        }
        if self.typing.set(user, false, Instant::now(), self.ttl) {
            self.publish_typing();
        }
    }

    /// `user` starts or stops typing.
    pub fn set_typing(&mut self, user: &str, typing: bool) {
        if self.typing.set(user, typing, Instant::now(), self.ttl) {
            self.publish_typing();
        }
    }

    /// When a presence grace period or a typing entry ends next.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.presence.next_deadline(), self.typing.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends what is due at `now`.
    pub fn expire(&mut self, now: Instant) {
        for delta in self.presence.expire(now) {
            self.local_presence(delta);
        }
        if self.typing.expire(now) {
            self.publish_typing();
        }
    }

    fn sync_presence(&mut self) {
        let subscribed: BTreeSet<&str> = self.timeline.iter().map(|s| s.user.as_str()).collect();
        let deltas = self.presence.sync(&subscribed, Instant::now(), self.grace);
        for delta in deltas {
            self.local_presence(delta);
        }
    }

    /// Whether another node shows `user`.
    fn remote_has(&self, user: &str) -> bool {
        self.remote.values().any(|users| users.contains(user))
    }

    /// A change of the users present through this node: shared with the
    /// other nodes (cluster mode), published unless another node shows
    /// the user anyway.
    fn local_presence(&mut self, delta: Delta) {
        let (user, present) = match &delta {
            Delta::Join(user) => (user, true),
            Delta::Leave(user) => (user, false),
        };
        if self.share {
            self.shared.push((user.clone(), present));
        }
        if !self.remote_has(user) {
            self.publish_presence(delta);
        }
    }

    /// Cluster mode: `user` is (or no longer is) present through `node`.
    pub fn remote_presence(&mut self, node: &str, user: &str, present: bool) {
        let shown = |c: &Channels| c.presence.is_shown(user) || c.remote_has(user);
        if user.is_empty() {
            // The node restarted: everyone it showed goes (unless shown
            // through another node or this one).
            let gone = self.remote.remove(node).unwrap_or_default();
            for user in gone {
                if !self.presence.is_shown(&user) && !self.remote_has(&user) {
                    self.publish_presence(Delta::Leave(user));
                }
            }
            return;
        }
        let before = shown(self);
        if present {
            self.remote
                .entry(node.to_owned())
                .or_default()
                .insert(user.to_owned());
        } else if let Some(users) = self.remote.get_mut(node) {
            users.remove(user);
            if users.is_empty() {
                self.remote.remove(node);
            }
        }
        match (before, shown(self)) {
            (false, true) => self.publish_presence(Delta::Join(user.to_owned())),
            (true, false) => self.publish_presence(Delta::Leave(user.to_owned())),
            _ => {}
        }
    }

    fn publish_presence(&mut self, delta: Delta) {
        let message = match &delta {
            Delta::Join(user) => self.presence_message("join", Some(user)),
            Delta::Leave(user) => self.presence_message("leave", Some(user)),
        };
        fan_out(&mut self.presence_subs, &message);
    }

    fn publish_typing(&mut self) {
        let message = self.typing_message();
        fan_out(&mut self.typing_subs, &message);
    }

    /// `x-event:presence` with `x-presence` (`snapshot`, `join`, `leave`),
    /// `x-user` for a change, and the full list as `{online: [...]}`.
    fn presence_message(&self, what: &'static str, user: Option<&str>) -> Arc<Message> {
        let mut headers = Headers::new();
        headers.push("x-event", "presence");
        headers.push("x-presence", what);
        if let Some(user) = user {
            headers.push("x-user", user.to_owned());
        }
        headers.push("content-type", "application/json");
        let mut online: BTreeSet<&str> = self.presence.users().into_iter().collect();
        online.extend(self.remote.values().flatten().map(String::as_str));
        let body = serde_json::json!({ "online": online });
        let destination = ByteString::from(format!("{}/presence", self.dest));
        Arc::new(Message::new(
            destination,
            headers,
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        ))
    }

    /// `x-event:typing` with the full list as `{typing: [...]}`.
    fn typing_message(&self) -> Arc<Message> {
        let mut headers = Headers::new();
        headers.push("x-event", "typing");
        headers.push("content-type", "application/json");
        let body = serde_json::json!({ "typing": self.typing.users() });
        let destination = ByteString::from(format!("{}/typing", self.dest));
        Arc::new(Message::new(
            destination,
            headers,
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
        ))
    }
}
