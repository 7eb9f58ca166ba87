//! The chat's log records: one command that changes room state, as the
//! node that took it from its client appends it and as every node applies
//! it. A compact binary encoding (the store's length-prefixed fields)
//! behind a version byte.
//!
//! Versions: 1 (no incarnation) is still read, as incarnation 0 (no
//! running process has it, so such a record is never "ours"); 2 adds the
//! origin's incarnation after its node id.

use crate::record::{Reader, Role, RoomKind, Writer};
use crate::rooms::Relation;
use bytes::Bytes;

/// The version written; a node refuses (skips, loudly) records of a
/// version it does not know.
const VERSION: u8 = 2;

/// The first version, without the origin's incarnation.
const VERSION_1: u8 = 1;

/// What a record asks the room to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create the room (`/rooms/create`): the initial members with their
    /// roles (the creator first). Id, creator and time are the record's.
    Create {
        /// Group or direct.
        kind: RoomKind,
        /// The display name.
        name: String,
        /// Whether anyone may join.
        public: bool,
        /// The initial members and invitees.
        members: Vec<(String, Role)>,
    },
    /// A post.
    Post {
        /// The client headers kept with it.
        headers: Vec<(String, String)>,
        /// The body.
        body: Bytes,
        /// The idempotency key.
        client_msg_id: Option<String>,
    },
    /// An edit, redaction or reaction of event `to`.
    Relate {
        /// What it does.
        relation: Relation,
        /// The event it is about.
        to: u64,
        /// The client headers kept with it.
        headers: Vec<(String, String)>,
        /// The body.
        body: Bytes,
        /// The idempotency key.
        client_msg_id: Option<String>,
    },
    /// Join.
    Join,
    /// Leave.
    Leave,
    /// Invite a user.
    Invite(String),
    /// Remove a member.
    Kick(String),
    /// Change a member's role.
    SetRole(String, Role),
    /// Move the read marker.
    Read {
        /// Up to this sequence number.
        seq: u64,
        /// Not shown to others.
        private: bool,
    },
    /// Start (`true`) or stop typing (ephemeral).
    Typing(bool),
    /// The user is (`true`) or no longer is present in the room through
    /// the origin node (ephemeral).
    Presence(bool),
}

impl Op {
    /// Whether applying it changes nothing stored (typing, presence).
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, Op::Typing(_) | Op::Presence(_))
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The node that appended it.
    pub origin: String,
    /// Which start of the origin's plugin appended it (random per start;
    /// 0: unknown, a version-1 record). Request ids restart with every
    /// start: a record answers a waiting command only when node id and
    /// incarnation are this node's.
    pub incarnation: u64,
    /// The origin's request id (matches the answer to its client).
    pub request: u64,
    /// When the origin took the command (ms since the Unix epoch): the
    /// time every node stamps on what it stores.
    pub ts: u64,
    /// The authenticated user who sent the command.
    pub user: String,
    /// The room.
    pub room: String,
    /// What to do.
    pub op: Op,
}

fn relation_code(r: &Relation) -> u8 {
    match r {
        Relation::Edit => 0,
        Relation::Redact => 1,
        Relation::React(_) => 2,
    }
}

fn headers(w: &mut Writer, headers: &[(String, String)]) {
    w.u64(headers.len() as u64);
    for (name, value) in headers {
        w.str(name).str(value);
    }
}

fn read_headers(r: &mut Reader<'_>) -> Option<Vec<(String, String)>> {
    let count = r.u64()?;
    let mut out = Vec::with_capacity(count.min(64) as usize);
    for _ in 0..count {
        out.push((r.str()?, r.str()?));
    }
    Some(out)
}

impl Entry {
    /// The record's payload.
    pub fn encode(&self) -> Bytes {
        let mut w = Writer(Vec::with_capacity(64 + self.room.len() + self.user.len()));
        w.u8(VERSION)
            .str(&self.origin)
            .u64(self.incarnation)
            .u64(self.request)
            .u64(self.ts)
            .str(&self.user)
            .str(&self.room);
        match &self.op {
            Op::Create {
                kind,
                name,
                public,
                members,
            } => {
                w.u8(0)
                    .u8(match kind {
                        RoomKind::Group => 0,
                        RoomKind::Direct => 1,
                    })
                    .str(name)
                    .u8(u8::from(*public))
                    .u64(members.len() as u64);
                for (user, role) in members {
                    w.str(user).u8(role.code());
                }
            }
            Op::Post {
                headers: h,
                body,
                client_msg_id,
            } => {
                w.u8(1).opt(client_msg_id.as_deref());
                headers(&mut w, h);
                w.bytes(body);
            }
            Op::Relate {
                relation,
                to,
                headers: h,
                body,
                client_msg_id,
            } => {
                w.u8(2).u8(relation_code(relation));
                if let Relation::React(key) = relation {
                    w.str(key);
                }
                w.u64(*to).opt(client_msg_id.as_deref());
                headers(&mut w, h);
                w.bytes(body);
            }
            Op::Join => {
                w.u8(3);
            }
            Op::Leave => {
                w.u8(4);
            }
            Op::Invite(user) => {
                w.u8(5).str(user);
            }
            Op::Kick(user) => {
                w.u8(6).str(user);
            }
            Op::SetRole(user, role) => {
                w.u8(7).str(user).u8(role.code());
            }
            Op::Read { seq, private } => {
                w.u8(8).u64(*seq).u8(u8::from(*private));
            }
            Op::Typing(on) => {
                w.u8(9).u8(u8::from(*on));
            }
            Op::Presence(on) => {
                w.u8(10).u8(u8::from(*on));
            }
        }
        Bytes::from(w.0)
    }

    /// Reads a payload; `None` if it is damaged or of an unknown version.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != VERSION && version != VERSION_1 {
            return None;
        }
        let origin = r.str()?;
        let incarnation = match version {
            VERSION_1 => 0,
            _ => r.u64()?,
        };
        let request = r.u64()?;
        let ts = r.u64()?;
        let user = r.str()?;
        let room = r.str()?;
        let flag = |r: &mut Reader<'_>| match r.u8()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let op = match r.u8()? {
            0 => {
                let kind = match r.u8()? {
                    0 => RoomKind::Group,
                    1 => RoomKind::Direct,
                    _ => return None,
                };
                let name = r.str()?;
                let public = flag(&mut r)?;
                let count = r.u64()?;
                let mut members = Vec::with_capacity(count.min(64) as usize);
                for _ in 0..count {
                    members.push((r.str()?, Role::from_code(r.u8()?)?));
                }
                Op::Create {
                    kind,
                    name,
                    public,
                    members,
                }
            }
            1 => {
                let client_msg_id = r.opt()?;
                let headers = read_headers(&mut r)?;
                let body = Bytes::copy_from_slice(r.bytes()?);
                Op::Post {
                    headers,
                    body,
                    client_msg_id,
                }
            }
            2 => {
                let relation = match r.u8()? {
                    0 => Relation::Edit,
                    1 => Relation::Redact,
                    2 => Relation::React(r.str()?),
                    _ => return None,
                };
                let to = r.u64()?;
                let client_msg_id = r.opt()?;
                let headers = read_headers(&mut r)?;
                let body = Bytes::copy_from_slice(r.bytes()?);
                Op::Relate {
                    relation,
                    to,
                    headers,
                    body,
                    client_msg_id,
                }
            }
            3 => Op::Join,
            4 => Op::Leave,
            5 => Op::Invite(r.str()?),
            6 => Op::Kick(r.str()?),
            7 => Op::SetRole(r.str()?, Role::from_code(r.u8()?)?),
            8 => Op::Read {
                seq: r.u64()?,
                private: flag(&mut r)?,
            },
            9 => Op::Typing(flag(&mut r)?),
            10 => Op::Presence(flag(&mut r)?),
            _ => return None,
        };
        if !r.0.is_empty() {
            return None;
        }
        Some(Entry {
            origin,
            incarnation,
            request,
            ts,
            user,
            room,
            op,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(op: Op) -> Entry {
        Entry {
            origin: "node-a".into(),
            incarnation: 0x0123_4567_89ab_cdef,
            request: 42,
            ts: 1_700_000_000_123,
            user: "alice".into(),
            room: "lobby".into(),
            op,
        }
    }

    #[test]
    fn every_op_round_trips_and_damage_is_detected() {
        let ops = vec![
            Op::Create {
                kind: RoomKind::Group,
                name: "Lobby".into(),
                public: true,
                members: vec![("alice".into(), Role::Owner), ("bob".into(), Role::Invited)],
            },
            Op::Create {
                kind: RoomKind::Direct,
                name: "dm".into(),
                public: false,
                members: vec![("alice".into(), Role::Member), ("bob".into(), Role::Member)],
            },
            Op::Post {
                headers: vec![("content-type".into(), "text/plain".into())],
                body: Bytes::from_static(b"hi\0there"),
                client_msg_id: Some("c-1".into()),
            },
            Op::Relate {
                relation: Relation::React("+1".into()),
                to: 7,
                headers: vec![],
                body: Bytes::new(),
                client_msg_id: None,
            },
            Op::Relate {
                relation: Relation::Edit,
                to: 3,
                headers: vec![("x-own".into(), "v".into())],
                body: Bytes::from_static(b"new"),
                client_msg_id: Some("e".into()),
            },
            Op::Relate {
                relation: Relation::Redact,
                to: 3,
                headers: vec![],
                body: Bytes::new(),
                client_msg_id: None,
            },
            Op::Join,
            Op::Leave,
            Op::Invite("carol".into()),
            Op::Kick("carol".into()),
            Op::SetRole("bob".into(), Role::Moderator),
            Op::Read {
                seq: 9,
                private: true,
            },
            Op::Typing(false),
            Op::Presence(true),
        ];
        for op in ops {
            let e = entry(op);
            let bytes = e.encode();
            assert_eq!(Entry::decode(&bytes).as_ref(), Some(&e));
            assert_eq!(Entry::decode(&bytes[..bytes.len() - 1]), None);
            let mut longer = bytes.to_vec();
            longer.push(0);
            assert_eq!(Entry::decode(&longer), None, "trailing bytes");
        }
        let mut other_version = entry(Op::Join).encode().to_vec();
        other_version[0] = 99;
        assert_eq!(Entry::decode(&other_version), None);
    }

    #[test]
    fn version_1_records_are_read_with_no_incarnation() {
        // A version-1 record as the first release wrote it: no
        // incarnation between the origin and the request id.
        let mut w = Writer(Vec::new());
        w.u8(1)
            .str("node-a")
            .u64(42)
            .u64(1_700_000_000_123)
            .str("alice")
            .str("lobby");
        w.u8(8).u64(9).u8(1);
        let expected = Entry {
            incarnation: 0,
            ..entry(Op::Read {
                seq: 9,
                private: true,
            })
        };
        assert_eq!(Entry::decode(&w.0), Some(expected));
        let v2 = entry(Op::Join).encode();
        assert_eq!(v2[0], 2, "version 2 is written");
    }
}
