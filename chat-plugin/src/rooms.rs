//! The running rooms: one task per active room, reached through a bounded
//! channel, started on first use and stopped when idle.

use crate::actor;
pub use crate::channels::Channel;
use crate::cluster::Cluster;
use crate::config::ChatConfig;
use crate::directory::Directory;
use crate::offline::{OfflineHook, Online};
use crate::record::Role;
use crate::replay;
use crate::reply::ReplyTo;
use crate::repo::StoredRoom;
use crate::store::KvStore;
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use stompede_plugin::{LogPosition, Mailbox, Services};
use tokio::sync::mpsc::{self, error::TrySendError};

/// Who asked for a command, and where its answers go.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The authenticated user.
    pub user: String,
    /// The session's mailbox (for the RECEIPT).
    pub mailbox: Mailbox,
    /// The SEND's `receipt`, answered once the command is done.
    pub receipt: Option<ByteString>,
    /// Where replies go.
    pub reply: ReplyTo,
    /// A command another node's client sent (cluster mode): applied here
    /// without answers.
    pub replica: bool,
}

/// A live subscription to a room.
#[derive(Debug, Clone)]
pub struct Sub {
    /// The session.
    pub session_id: u64,
    /// The subscription id.
    pub id: ByteString,
    /// The session's user.
    pub user: String,
    /// The session's mailbox.
    pub mailbox: Mailbox,
}

/// Which history page `/room/{id}/history` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Events before this sequence number (paging backwards).
    pub before: Option<u64>,
    /// Events after this sequence number (paging forwards).
    pub after: Option<u64>,
    /// The page size.
    pub limit: usize,
}

/// What an event about another event does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// New content for the sender's own message.
    Edit,
    /// Takes back a message, edit or reaction; purges its stored body.
    Redact,
    /// A reaction (an emoji or any short key) to a message.
    React(String),
}

impl Relation {
    /// The command's name in answers.
    pub fn command(&self) -> &'static str {
        match self {
            Relation::Edit => "edit",
            Relation::Redact => "redact",
            Relation::React(_) => "react",
        }
    }
}

/// A command for a room's task.
#[derive(Debug)]
pub enum Cmd {
    /// Store a new room (from `/rooms/create`).
    Init(Box<StoredRoom>, Caller),
    /// Post to the timeline.
    Post {
        /// Who posts.
        caller: Caller,
        /// The client headers kept with the post.
        headers: Vec<(String, String)>,
        /// The body.
        body: Bytes,
        /// The idempotency key.
        client_msg_id: Option<String>,
    },
    /// An edit, redaction or reaction of event `to`.
    Relate {
        /// Who sends it.
        caller: Caller,
        /// What it does.
        relation: Relation,
        /// The event it is about.
        to: u64,
        /// The client headers kept with it.
        headers: Vec<(String, String)>,
        /// The body (an edit's new content).
        body: Bytes,
        /// The idempotency key.
        client_msg_id: Option<String>,
    },
    /// Join.
    Join(Caller),
    /// Leave.
    Leave(Caller),
    /// Invite a user.
    Invite(Caller, String),
    /// Remove a member.
    Kick(Caller, String),
    /// Make a member a moderator or a member again (the owner).
    SetRole(Caller, String, Role),
    /// Move the read marker (`true`: private, not published).
    Read(Caller, u64, bool),
    /// A history page.
    History(Caller, HistoryQuery),
    /// The room's description.
    Info(Caller),
    /// Attach a subscription (to the timeline after its replay).
    Subscribe {
        /// The subscription.
        sub: Sub,
        /// What to replay first (timeline only).
        request: replay::Request,
        /// What it receives.
        channel: Channel,
    },
    /// Start (`true`) or stop typing.
    Typing(Caller, bool),
    /// Delete what the retention rules no longer keep (from the room's
    /// own timer).
    Prune,
    /// Detach a subscription.
    Unsubscribe {
        /// The session.
        session_id: u64,
        /// The subscription id.
        id: ByteString,
    },
    /// A record of the cluster log (cluster mode).
    Log(Box<Applied>),
    /// `user` is (or no longer is) present in the room through another
    /// node (cluster mode, from the log).
    RemotePresence {
        /// The node the user is connected to.
        node: String,
        /// The user.
        user: String,
        /// Present or gone.
        online: bool,
    },
}

/// A record of the cluster log on its way to its room's task.
#[derive(Debug)]
pub struct Applied {
    /// Where it sits in the log.
    pub position: LogPosition,
    /// The time the origin took the command: every node stores this time.
    pub ts: u64,
    /// Whether this start of this node appended it (node id and
    /// incarnation): its client waits for the answer, and this node tells
    /// the offline hooks.
    pub ours: bool,
    /// Whether it changes nothing stored (typing, presence).
    pub ephemeral: bool,
    /// The command.
    pub cmd: Cmd,
}

impl Cmd {
    /// Commands that change who receives live messages start a turn of
    /// their own, so that a turn's live messages reach exactly the
    /// subscribers attached when they were stored.
    pub fn is_barrier(&self) -> bool {
        matches!(self, Cmd::Subscribe { .. })
    }
}

/// What the plugin shares with its room tasks.
pub struct Ctx {
    /// The configuration.
    pub config: ChatConfig,
    /// Where rooms are stored.
    pub store: Arc<dyn KvStore>,
    /// Who is in which room.
    pub dir: RwLock<Directory>,
    /// The broker.
    pub services: Arc<dyn Services>,
    /// The running room tasks.
    running: Mutex<HashMap<String, mpsc::Sender<Cmd>>>,
    /// Told about members with no session when a message is stored.
    pub offline_hooks: Vec<Arc<dyn OfflineHook>>,
    /// Which users have a session.
    pub online: Online,
    /// Cluster mode: the log and what goes with it (`None` on a single
    /// node).
    pub cluster: Option<Cluster>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("config", &self.config).finish()
    }
}

impl Ctx {
    /// A context over `store`, whose rooms are listed in `dir`.
    pub fn new(
        config: ChatConfig,
        store: Arc<dyn KvStore>,
        dir: Directory,
        services: Arc<dyn Services>,
        offline_hooks: Vec<Arc<dyn OfflineHook>>,
        cluster: Option<Cluster>,
    ) -> Ctx {
        Ctx {
            cluster,
            config,
            store,
            dir: RwLock::new(dir),
            services,
            running: Mutex::new(HashMap::new()),
            offline_hooks,
            online: Online::default(),
        }
    }

    /// The directory, for reading.
    pub fn dir(&self) -> RwLockReadGuard<'_, Directory> {
        self.dir.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory, for changing.
    pub fn dir_mut(&self) -> RwLockWriteGuard<'_, Directory> {
        self.dir.write().unwrap_or_else(|e| e.into_inner())
    }

    fn running(&self) -> MutexGuard<'_, HashMap<String, mpsc::Sender<Cmd>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `cmd` for `room`'s task, starting the task if needed. Never
    /// waits: a full queue refuses the command.
    pub fn dispatch(self: &Arc<Self>, room: &str, cmd: Cmd) -> Result<(), String> {
        let mut running = self.running();
        let cmd = match running.get(room) {
            Some(tx) => match tx.try_send(cmd) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(_)) => return Err(format!("room {room} is busy")),
                Err(TrySendError::Closed(cmd)) => cmd,
            },
            None => cmd,
        };
        let (tx, rx) = mpsc::channel(self.config.room_queue);
        tx.try_send(cmd)
            .map_err(|_| format!("room {room} could not start"))?;
        running.insert(room.to_owned(), tx);
        tokio::spawn(actor::run(Arc::clone(self), room.to_owned(), rx));
        Ok(())
    }

    /// Queues `cmd` (a log record) for `room`'s task, starting the task if
    /// needed, waiting while its queue is full: records are never refused,
    /// and the log waits for them (backpressure).
    pub async fn dispatch_waiting(self: &Arc<Self>, room: &str, mut cmd: Cmd) {
        loop {
            let tx = {
                let mut running = self.running();
                match running.get(room) {
                    Some(tx) => tx.clone(),
                    None => {
                        let (tx, rx) = mpsc::channel(self.config.room_queue);
                        if tx.try_send(cmd).is_err() {
                            // Never: the channel is new and has room.
                            tracing::error!(room, "room could not start");
                            return;
                        }
                        running.insert(room.to_owned(), tx);
                        tokio::spawn(actor::run(Arc::clone(self), room.to_owned(), rx));
                        return;
                    }
                }
            };
            match tx.send(cmd).await {
                Ok(()) => return,
                // The task stopped meanwhile (idle): start it again.
                Err(mpsc::error::SendError(back)) => {
                    cmd = back;
                    let mut running = self.running();
                    if running.get(room).is_some_and(|t| t.same_channel(&tx)) {
                        running.remove(room);
                    }
                }
            }
        }
    }

    /// Queues `cmd` (an unsubscribe) for `room`'s task even when its queue
    /// is full: then a task waits for room in the queue, behind the
    /// commands already queued (a subscription's SUBSCRIBE is never
    /// overtaken by its UNSUBSCRIBE). A room that does not run has no
    /// subscriptions: nothing is queued.
    pub fn dispatch_reliably(&self, room: &str, cmd: Cmd) {
        let running = self.running();
        let Some(tx) = running.get(room) else {
            return;
        };
        match tx.try_send(cmd) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(cmd)) => {
                let tx = tx.clone();
                drop(running);
                tracing::debug!(room, "room queue full: the unsubscribe waits");
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let _ = tx.send(cmd).await;
                    });
                }
            }
        }
    }

    /// Called by an idle room task: it stops (true) unless a command is
    /// waiting. Holding the lock that senders take makes this race-free.
    pub fn retire(&self, room: &str, rx: &mpsc::Receiver<Cmd>) -> bool {
        let mut running = self.running();
        if !rx.is_empty() {
            return false;
        }
        running.remove(room);
        true
    }

    /// Stops every room task (each finishes its turn, then ends).
    pub fn stop_all(&self) {
        self.running().clear();
    }

    /// The rooms whose task runs.
    pub fn running_room_ids(&self) -> Vec<String> {
        self.running().keys().cloned().collect()
    }

    /// How many room tasks run.
    pub fn running_rooms(&self) -> usize {
        self.running().len()
    }
}
