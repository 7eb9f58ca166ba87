//! The records the chat stores, and their compact binary encoding
//! (length-prefixed fields behind a version byte).

use bytes::Bytes;

/// What a timeline event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The room was created (first event).
    Create,
    /// A post.
    Message,
    /// A user joined.
    Join,
    /// A user left.
    Leave,
    /// A member invited a user (`target`).
    Invite,
    /// A moderator removed a member (`target`).
    Kick,
    /// New content for a message (`relates_to`) of the same sender.
    Edit,
    /// A message, edit or reaction (`relates_to`) was taken back: its
    /// stored body is purged.
    Redact,
    /// A reaction (`x-reaction`) to a message (`relates_to`).
    Reaction,
    /// The owner made a member (`target`) a moderator or a member again
    /// (`x-role`).
    Role,
}

impl EventKind {
    /// The `x-event` value.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Create => "create",
            EventKind::Message => "message",
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Invite => "invite",
            EventKind::Kick => "kick",
            EventKind::Edit => "edit",
            EventKind::Redact => "redact",
            EventKind::Reaction => "reaction",
            EventKind::Role => "role",
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            EventKind::Create => 0,
            EventKind::Message => 1,
            EventKind::Join => 2,
            EventKind::Leave => 3,
            EventKind::Invite => 4,
            EventKind::Kick => 5,
            EventKind::Edit => 6,
            EventKind::Redact => 7,
            EventKind::Reaction => 8,
            EventKind::Role => 9,
        }
    }

    fn from_code(code: u8) -> Option<EventKind> {
        Some(match code {
            0 => EventKind::Create,
            1 => EventKind::Message,
            2 => EventKind::Join,
            3 => EventKind::Leave,
            4 => EventKind::Invite,
            5 => EventKind::Kick,
            6 => EventKind::Edit,
            7 => EventKind::Redact,
            8 => EventKind::Reaction,
            9 => EventKind::Role,
            _ => return None,
        })
    }
}

/// One stored timeline event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its sequence number in the room (1, 2, 3 … within an epoch).
    pub seq: u64,
    /// When the server stored it (ms since the Unix epoch; never decreases
    /// within a room).
    pub ts: u64,
    /// What it is.
    pub kind: EventKind,
    /// Who caused it.
    pub sender: String,
    /// The member it is about (invite, kick), if not the sender.
    pub target: Option<String>,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// How many `message` events the room had once this one was stored
    /// (unread counts are differences of these).
    pub msg_index: u64,
    /// The client's own headers (e.g. `content-type`).
    pub headers: Vec<(String, String)>,
    /// The body, opaque.
    pub body: Bytes,
    /// The event an edit, redaction or reaction is about.
    pub relates_to: Option<u64>,
    /// The redaction that purged this event's body and headers.
    pub redacted_by: Option<u64>,
}

/// Group or one-to-one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomKind {
    /// Any number of members, managed by owner and moderators.
    Group,
    /// Exactly two users; the id derives from them.
    Direct,
}

impl RoomKind {
    /// The `x-kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Group => "group",
            RoomKind::Direct => "direct",
        }
    }
}

/// A room's stored description and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMeta {
    /// The room id (the `{id}` of `/room/{id}`).
    pub id: String,
    /// Group or direct.
    pub kind: RoomKind,
    /// A display name.
    pub name: String,
    /// Whether any user may join without an invite.
    pub public: bool,
    /// Changes when the room's history starts over; cursors of another
    /// epoch are never trusted.
    pub epoch: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at: u64,
    /// Who created it.
    pub created_by: String,
    /// The last sequence number used (0: none yet).
    pub head: u64,
    /// The `message` events so far.
    pub msg_count: u64,
}

/// A user's relation to a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Invited, not yet joined: may join, may not read or post.
    Invited,
    /// A member.
    Member,
    /// A member who may invite and kick.
    Moderator,
    /// The creator: a moderator who cannot be kicked.
    Owner,
}

impl Role {
    /// The role's name in replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Invited => "invited",
            Role::Member => "member",
            Role::Moderator => "moderator",
            Role::Owner => "owner",
        }
    }

    /// Whether the user is a member (may read and post).
    pub fn is_member(self) -> bool {
        self != Role::Invited
    }

    /// Whether the user may kick members.
    pub fn moderates(self) -> bool {
        matches!(self, Role::Moderator | Role::Owner)
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Invited => 0,
            Role::Member => 1,
            Role::Moderator => 2,
            Role::Owner => 3,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Role> {
        Some(match code {
            0 => Role::Invited,
            1 => Role::Member,
            2 => Role::Moderator,
            3 => Role::Owner,
            _ => return None,
        })
    }
}

/// A member's stored state in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The role.
    pub role: Role,
    /// "Read up to" this sequence number.
    pub read_seq: u64,
    /// The room's `msg_count` at `read_seq` (for unread counts).
    pub read_index: u64,
    /// The marker others see on `/room/{id}/receipts` (private reads do
    /// not move it).
    pub shown_seq: u64,
}

impl Member {
    /// A member with nothing read.
    pub fn new(role: Role) -> Member {
        Member {
            role,
            read_seq: 0,
            read_index: 0,
            shown_seq: 0,
        }
    }
}

const VERSION: u8 = 1;

/// Events are written in version 2 (with `relates_to` and
/// `redacted_by`); version 1 events are still read.
const EVENT_VERSION: u8 = 2;

/// Appends fields to a record.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(&v[..len as usize]);
        self
    }
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    pub(crate) fn opt(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(s) => self.u8(1).str(s),
            None => self.u8(0),
        }
    }
    pub(crate) fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(n) => self.u8(1).u64(n),
            None => self.u8(0),
        }
    }
}

/// Reads fields back; every method is `None` on a short or bad record.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        self.take(len as usize)
    }
    pub(crate) fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    pub(crate) fn opt(&mut self) -> Option<Option<String>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }
    pub(crate) fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }
}

impl Event {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64 + self.body.len()));
        w.u8(EVENT_VERSION)
            .u64(self.seq)
            .u64(self.ts)
            .u8(self.kind.code())
            .str(&self.sender)
            .opt(self.target.as_deref())
            .opt(self.client_msg_id.as_deref())
            .u64(self.msg_index);
        w.u64(self.headers.len() as u64);
        for (name, value) in &self.headers {
            w.str(name).str(value);
        }
        w.bytes(&self.body);
        w.opt_u64(self.relates_to).opt_u64(self.redacted_by);
        w.0
    }

    /// Reads a stored event; `None` if the record is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != 1 && version != EVENT_VERSION {
            return None;
        }
        let seq = r.u64()?;
        let ts = r.u64()?;
        let kind = EventKind::from_code(r.u8()?)?;
        let sender = r.str()?;
        let target = r.opt()?;
        let client_msg_id = r.opt()?;
        let msg_index = r.u64()?;
        let count = r.u64()?;
        let mut headers = Vec::with_capacity(count.min(64) as usize);
        for _ in 0..count {
            headers.push((r.str()?, r.str()?));
        }
        let body = Bytes::copy_from_slice(r.bytes()?);
        let (relates_to, redacted_by) = match version {
            1 => (None, None),
            _ => (r.opt_u64()?, r.opt_u64()?),
        };
        Some(Event {
            seq,
            ts,
            kind,
            sender,
            target,
            client_msg_id,
            msg_index,
            headers,
            body,
            relates_to,
            redacted_by,
        })
    }
}

impl RoomMeta {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION)
            .str(&self.id)
            .u8(match self.kind {
                RoomKind::Group => 0,
                RoomKind::Direct => 1,
            })
            .str(&self.name)
            .u8(u8::from(self.public))
            .str(&self.epoch)
            .u64(self.created_at)
            .str(&self.created_by)
            .u64(self.head)
            .u64(self.msg_count);
        w.0
    }

    /// Reads a stored description; `None` if the record is damaged.
    pub fn decode(bytes: &[u8]) -> Option<RoomMeta> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        Some(RoomMeta {
            id: r.str()?,
            kind: match r.u8()? {
                0 => RoomKind::Group,
                1 => RoomKind::Direct,
                _ => return None,
            },
            name: r.str()?,
            public: r.u8()? != 0,
            epoch: r.str()?,
            created_at: r.u64()?,
            created_by: r.str()?,
            head: r.u64()?,
            msg_count: r.u64()?,
        })
    }
}

impl Member {
    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(VERSION)
            .u8(self.role.code())
            .u64(self.read_seq)
            .u64(self.read_index)
            .u64(self.shown_seq);
        w.0
    }

    /// Reads a stored member; `None` if the record is damaged.
    pub fn decode(bytes: &[u8]) -> Option<Member> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        Some(Member {
            role: Role::from_code(r.u8()?)?,
            read_seq: r.u64()?,
            read_index: r.u64()?,
            shown_seq: r.u64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let event = Event {
            seq: 7,
            ts: 1_700_000_000_000,
            kind: EventKind::Message,
            sender: "alice".into(),
            target: None,
            client_msg_id: Some("c-1".into()),
            msg_index: 3,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(b"{\"text\":\"hi\"}\0binary"),
            relates_to: Some(2),
            redacted_by: None,
        };
        let bytes = event.encode();
        assert_eq!(Event::decode(&bytes), Some(event));
        assert_eq!(Event::decode(&bytes[..bytes.len() - 1]), None);

        let meta = RoomMeta {
            id: "r1".into(),
            kind: RoomKind::Direct,
            name: "n".into(),
            public: true,
            epoch: "e".into(),
            created_at: 1,
            created_by: "bob".into(),
            head: 9,
            msg_count: 4,
        };
        assert_eq!(RoomMeta::decode(&meta.encode()), Some(meta));
        let member = Member {
            role: Role::Moderator,
            read_seq: 5,
            read_index: 2,
            shown_seq: 4,
        };
        assert_eq!(Member::decode(&member.encode()), Some(member));
        assert_eq!(Member::decode(&[9, 9]), None);
    }
}
