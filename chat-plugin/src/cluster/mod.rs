//! Cluster mode: the chat's state is a replicated state machine over the
//! broker's replicated log (Kafka partitions). A command that changes a
//! room is not applied where it arrives: the node encodes it ([`Entry`])
//! and appends it to the room's partition; every node, that one included,
//! applies the records in log order through the room's task, with the
//! record's time, so every node stores the same events, sequence numbers
//! and epochs. The node that appended a record answers its client once it
//! applied it ([`Pending`]); [`Track`] knows where to resume after a
//! restart. Reads are served from the local replica.

mod apply;
mod codec;
mod pending;
mod track;

pub use apply::apply_record;
pub use codec::{Entry, Op};
pub use pending::{Pending, Waiting};
pub use track::Track;

use crate::record::{Member, RoomMeta};
use crate::reply::{ReplyTo, Target};
use crate::repo::StoredRoom;
use crate::rooms::{Caller, Cmd};
use crate::state::now_ms;
use bytes::Bytes;
use bytestring::ByteString;
use std::sync::{Arc, OnceLock};
use stompede_codec::Headers;
use stompede_plugin::{Deliver, LogPosition, Mailbox, Message, ReplicatedLog, Services};

/// What the plugin keeps for cluster mode.
pub struct Cluster {
    /// The chat's log.
    pub log: Arc<dyn ReplicatedLog>,
    /// This node's id.
    pub node: String,
    /// This start of the plugin (random, never 0): written in every
    /// record, so a node started again under its id tells its old
    /// records (read again while it catches up) from its own.
    pub incarnation: u64,
    /// Commands of this node's clients waiting for their record.
    pub pending: Arc<Pending>,
    /// What is applied and stored, per partition.
    pub track: Track,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("incarnation", &format_args!("{:x}", self.incarnation))
            .field("partitions", &self.log.partitions())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl Cluster {
    /// Cluster mode over `log`.
    pub fn new(log: Arc<dyn ReplicatedLog>) -> Cluster {
        Cluster {
            node: log.node_id().to_owned(),
            incarnation: new_incarnation(),
            log,
            pending: Arc::new(Pending::default()),
            track: Track::default(),
        }
    }

    /// Whether this node id appended `entry` (in this start or before).
    pub fn is_this_node(&self, entry: &Entry) -> bool {
        entry.origin == self.node
    }

    /// Whether this start of the plugin appended `entry`: only such a
    /// record answers a waiting command, tells the offline hooks, and is
    /// applied however old it is.
    pub fn is_ours(&self, entry: &Entry) -> bool {
        entry.incarnation == self.incarnation && self.is_this_node(entry)
    }

    /// Appends `op` by `caller` on `room` to the room's partition. The
    /// caller is answered when this node applies the record, or with an
    /// error if the log does not take it. Err: refused at once (too many
    /// commands waiting).
    pub fn submit(
        &self,
        services: &Arc<dyn Services>,
        room: &str,
        caller: Caller,
        command: &'static str,
        op: Op,
    ) -> Result<(), String> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the chat plugin needs a Tokio runtime".to_owned())?;
        let user = caller.user.clone();
        let request = self
            .pending
            .insert(caller, command)
            .ok_or_else(|| "chat is busy: too many commands wait for the cluster log".to_owned())?;
        let append = self.append(room, user, request, op);
        let pending = Arc::clone(&self.pending);
        let services = Arc::clone(services);
        let room = room.to_owned();
        runtime.spawn(async move {
            if let Err(e) = append.await {
                tracing::warn!(room = %room, error = %e, "chat log append failed");
                if let Some(waiting) = pending.take(request) {
                    answer_failure(&*services, &room, &waiting, &format!("not stored: {e}"));
                }
            }
        });
        Ok(())
    }

    /// Tells the other nodes this node (re)started: one record with no
    /// room on every partition, so each room (on its partition, before
    /// anything this node appends for it) forgets whom this node showed
    /// present before.
    pub fn announce_start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for partition in 0..self.log.partitions() {
            let entry = Entry {
                origin: self.node.clone(),
                incarnation: self.incarnation,
                request: 0,
                ts: now_ms(),
                user: String::new(),
                room: String::new(),
                op: Op::Presence(false),
            };
            let append = self.log.append(partition, entry.encode());
            runtime.spawn(async move {
                if let Err(e) = append.await {
                    tracing::debug!(partition, error = %e, "chat start record not appended");
                }
            });
        }
    }

    /// Appends an ephemeral `op` (presence) nobody waits for; a failure
    /// is logged.
    pub fn publish(&self, room: &str, user: &str, op: Op) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let append = self.append(room, user.to_owned(), 0, op);
        let room = room.to_owned();
        runtime.spawn(async move {
            if let Err(e) = append.await {
                tracing::debug!(room = %room, error = %e, "chat presence record not appended");
            }
        });
    }

    fn append(
        &self,
        room: &str,
        user: String,
        request: u64,
        op: Op,
    ) -> stompede_plugin::AppendFuture {
        let entry = Entry {
            origin: self.node.clone(),
            incarnation: self.incarnation,
            request,
            ts: now_ms(),
            user,
            room: room.to_owned(),
            op,
        };
        let partition = self.log.partition_for(room);
        self.log.append(partition, entry.encode())
    }
}

/// A random incarnation id, never 0 (the incarnation of version-1
/// records): the standard library's per-process random hash keys (which
/// also differ between two starts in one process), the clock and the
/// process id.
fn new_incarnation() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// Answers a command whose record the log did not take, as a room answers
/// a failed command: a RECEIPT with `x-error`, and an error MESSAGE unless
/// the RECEIPT says it all.
fn answer_failure(services: &dyn Services, room: &str, waiting: &Waiting, error: &str) {
    let caller = &waiting.caller;
    let mut headers = Headers::new();
    headers.push("x-error", error.replace(['\r', '\n'], " "));
    if let Some(id) = &caller.receipt {
        caller.mailbox.receipt(id.clone(), headers.clone());
    }
    if caller.receipt.is_none() || caller.reply.explicit {
        headers.push("x-room", room.to_owned());
        caller
            .reply
            .send(services, "error", waiting.command, headers, Bytes::new());
    }
}

/// The mailbox of a command that came from another node: nobody to answer.
struct Nobody;

impl Deliver for Nobody {
    fn deliver(&self, _: ByteString, _: Arc<Message>) -> bool {
        false
    }
    fn deliver_reliably(&self, _: ByteString, _: Arc<Message>) -> bool {
        false
    }
    fn receipt(&self, _: ByteString, _: Headers) -> bool {
        false
    }
    fn is_open(&self) -> bool {
        false
    }
}

/// The caller of a record this node applies without answering anyone
/// (another node's client, or this node's after a restart).
pub fn replica_caller(user: &str, inbox: &str) -> Caller {
    static NOBODY: OnceLock<Mailbox> = OnceLock::new();
    Caller {
        user: user.to_owned(),
        mailbox: NOBODY
            .get_or_init(|| Mailbox::new(Arc::new(Nobody)))
            .clone(),
        receipt: None,
        reply: ReplyTo {
            user: user.to_owned(),
            target: Target::User {
                tail: inbox.to_owned(),
            },
            correlation_id: None,
            explicit: false,
        },
        replica: true,
    }
}

/// Splits a command that changes room state into its caller, its name in
/// answers and its log op; any other command comes back unchanged.
// The command is handed back by value as the caller passed it: boxing it
// would cost an allocation for nothing.
#[allow(clippy::result_large_err)]
pub fn split(cmd: Cmd) -> Result<(Caller, &'static str, Op), Cmd> {
    Ok(match cmd {
        Cmd::Post {
            caller,
            headers,
            body,
            client_msg_id,
        } => (
            caller,
            "post",
            Op::Post {
                headers,
                body,
                client_msg_id,
            },
        ),
        Cmd::Relate {
            caller,
            relation,
            to,
            headers,
            body,
            client_msg_id,
        } => (
            caller,
            relation.command(),
            Op::Relate {
                relation,
                to,
                headers,
                body,
                client_msg_id,
            },
        ),
        Cmd::Join(c) => (c, "join", Op::Join),
        Cmd::Leave(c) => (c, "leave", Op::Leave),
        Cmd::Invite(c, user) => (c, "invite", Op::Invite(user)),
        Cmd::Kick(c, user) => (c, "kick", Op::Kick(user)),
        Cmd::SetRole(c, user, role) => (c, "role", Op::SetRole(user, role)),
        Cmd::Read(c, seq, private) => (c, "read", Op::Read { seq, private }),
        Cmd::Typing(c, on) => (c, "typing", Op::Typing(on)),
        other => return Err(other),
    })
}

/// The epoch of a room created by the record at `position` at `ts`: the
/// same on every node, different for every creation.
pub fn epoch(ts: u64, position: LogPosition) -> String {
    format!("{ts:x}.{}.{}", position.partition, position.offset)
}

/// The room command a record asks for, answered to `caller`.
pub fn command(entry: Entry, caller: Caller, position: LogPosition) -> Cmd {
    match entry.op {
        Op::Create {
            kind,
            name,
            public,
            members,
        } => {
            let meta = RoomMeta {
                id: entry.room,
                kind,
                name,
                public,
                epoch: epoch(entry.ts, position),
                created_at: entry.ts,
                created_by: entry.user,
                head: 0,
                msg_count: 0,
            };
            let members = members
                .into_iter()
                .map(|(user, role)| (user, Member::new(role)))
                .collect();
            Cmd::Init(Box::new(StoredRoom { meta, members }), caller)
        }
        Op::Post {
            headers,
            body,
            client_msg_id,
        } => Cmd::Post {
            caller,
            headers,
            body,
            client_msg_id,
        },
        Op::Relate {
            relation,
            to,
            headers,
            body,
            client_msg_id,
        } => Cmd::Relate {
            caller,
            relation,
            to,
            headers,
            body,
            client_msg_id,
        },
        Op::Join => Cmd::Join(caller),
        Op::Leave => Cmd::Leave(caller),
        Op::Invite(user) => Cmd::Invite(caller, user),
        Op::Kick(user) => Cmd::Kick(caller, user),
        Op::SetRole(user, role) => Cmd::SetRole(caller, user, role),
        Op::Read { seq, private } => Cmd::Read(caller, seq, private),
        Op::Typing(on) => Cmd::Typing(caller, on),
        Op::Presence(online) => Cmd::RemotePresence {
            node: entry.origin,
            user: entry.user,
            online,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use stompede_plugin::{AppendFuture, Message};

    /// A log that refuses every record.
    struct Down;

    impl ReplicatedLog for Down {
        fn node_id(&self) -> &str {
            "n1"
        }
        fn partitions(&self) -> u32 {
            4
        }
        fn partition_for(&self, _: &str) -> u32 {
            1
        }
        fn append(&self, _: u32, _: Bytes) -> AppendFuture {
            Box::pin(std::future::ready(Err("log unreachable".to_owned())))
        }
    }

    /// Keeps what the plugin sends a session and a user.
    #[derive(Default)]
    struct Seen {
        receipts: Mutex<Vec<(ByteString, Headers)>>,
        messages: Mutex<Vec<Message>>,
    }

    impl Deliver for Seen {
        fn deliver(&self, _: ByteString, _: Arc<Message>) -> bool {
            true
        }
        fn deliver_reliably(&self, _: ByteString, _: Arc<Message>) -> bool {
            true
        }
        fn receipt(&self, id: ByteString, headers: Headers) -> bool {
            self.receipts.lock().expect("lock").push((id, headers));
            true
        }
        fn is_open(&self) -> bool {
            true
        }
    }

    struct Broker(Arc<Seen>);

    impl Services for Broker {
        fn publish(&self, message: Message, _: bool) -> Result<(), String> {
            self.0.messages.lock().expect("lock").push(message);
            Ok(())
        }
        fn deliver_to_user(&self, _: &str, _: &str, message: Message, _: bool) {
            self.0.messages.lock().expect("lock").push(message);
        }
        fn data_dir(&self, _: &str) -> Option<PathBuf> {
            None
        }
    }

    #[tokio::test]
    async fn a_refused_append_is_answered_with_an_error_and_forgotten() {
        let seen = Arc::new(Seen::default());
        let services: Arc<dyn Services> = Arc::new(Broker(Arc::clone(&seen)));
        let cluster = Cluster::new(Arc::new(Down));
        let caller = Caller {
            user: "alice".into(),
            mailbox: Mailbox::new(Arc::clone(&seen) as Arc<dyn Deliver>),
            receipt: Some(ByteString::from_static("r-1")),
            reply: ReplyTo {
                user: "alice".into(),
                target: Target::User {
                    tail: "queue/chat".into(),
                },
                correlation_id: None,
                explicit: false,
            },
            replica: false,
        };
        let op = Op::Join;
        cluster
            .submit(&services, "lobby", caller, "join", op)
            .expect("submitted");
        for _ in 0..100 {
            if !seen.receipts.lock().expect("lock").is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let receipts = seen.receipts.lock().expect("lock");
        assert_eq!(receipts.len(), 1);
        assert_eq!(&*receipts[0].0, "r-1");
        assert_eq!(
            receipts[0].1.get("x-error"),
            Some("not stored: log unreachable")
        );
        assert!(
            seen.messages.lock().expect("lock").is_empty(),
            "the RECEIPT says it all"
        );
        assert_eq!(cluster.pending.len(), 0, "nothing waits any more");
    }
}
