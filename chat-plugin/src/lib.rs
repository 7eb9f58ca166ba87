//! # stompede-chat
//!
//! Chat rooms inside the Stompede broker, for stock STOMP clients
//! (`@stomp/stompjs`, `@stomp/rx-stomp`): rooms and membership, a stored
//! timeline per room with sequence numbers and an epoch, posting with
//! receipts after storage and dedupe, edits, redactions and reactions,
//! history replay on SUBSCRIBE with a gapless resume, history pages, read
//! markers and unread counts, presence and typing, per-user rate limits,
//! retention, and a hook for members who are offline. The protocol is
//! described in the crate's `README.md`.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! # use stompede::Broker;
//! use stompede_chat::{ChatConfig, ChatPlugin};
//! let broker = Broker::builder()
//!     .plugin(ChatPlugin::new(ChatConfig::default()))
//!     .build()
//!     .start()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! Modules, one job each: [`config`] (settings), [`store`] (bytes on disk
//! or in memory), `record` and `repo` (what is stored, under which keys),
//! `directory` (who is in which room, in memory), `dest` (destination
//! names), `rooms` and `actor` (a task per room), `state` (the rules of
//! each command), `relations` (edits, redactions, reactions), `retention`
//! (deleting old events), `replay` (what a SUBSCRIBE replays), `timeline`
//! (stamped MESSAGEs), `channels`, `presence` and `typing` (live
//! subscriptions and ephemeral state), `limits` (rate limits), `reply`
//! (answers and inbox notices), `offline` and `webhook` (the
//! offline-member hook), `cluster` (cluster mode: log records, the
//! origin's pending answers, resume positions), `hooks` (the
//! [`Plugin`](stompede_plugin::Plugin) implementation).
//!
//! When the broker runs as a cluster (it hands the plugin a replicated
//! log, see `Plugin::log_name`), every command that changes a room is a
//! record of that log, applied in log order by every node: see "Cluster
//! mode" in the README.

mod actor;
mod channels;
mod cluster;
pub mod config;
mod dest;
mod directory;
mod hooks;
mod limits;
mod offline;
mod presence;
mod record;
mod relations;
mod replay;
mod reply;
mod repo;
mod retention;
mod rooms;
mod state;
pub mod store;
mod timeline;
mod typing;
mod webhook;

pub use config::ChatConfig;
pub use dest::direct_room_id;
pub use offline::{OfflineHook, OfflineMessage};
pub use timeline::STAMPED;

use rooms::Ctx;
use std::sync::{Arc, RwLock};

/// The chat plugin. Register it with the broker
/// (`Broker::builder().plugin(ChatPlugin::new(config))`); it opens its
/// storage when the broker starts: a sled database in the broker's data
/// directory (`{store.path}/plugins/chat`), or memory when the broker
/// keeps nothing on disk.
pub struct ChatPlugin {
    config: ChatConfig,
    /// The embedder's offline-member callbacks.
    offline_hooks: Vec<Arc<dyn OfflineHook>>,
    /// Set by `start`, taken by `stop`.
    ctx: RwLock<Option<Arc<Ctx>>>,
    owned_subs: hooks::OwnedSubs,
    limiter: limits::Limiter,
}

impl ChatPlugin {
    /// A plugin with `config` (checked when the broker starts).
    pub fn new(config: ChatConfig) -> ChatPlugin {
        let rate = |per_sec: u32, burst: u32| limits::Rate {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
        };
        let limiter = limits::Limiter::new(
            rate(config.post_rate, config.post_burst),
            rate(config.typing_rate, config.typing_burst),
            rate(config.read_rate, config.read_burst),
            rate(config.error_notice_rate, config.error_notice_burst),
        );
        ChatPlugin {
            limiter,
            offline_hooks: Vec::new(),
            config,
            ctx: RwLock::new(None),
            owned_subs: Default::default(),
        }
    }

    /// Adds a callback fired when a message is stored in a room some of
    /// whose members have no connected session (for push notifications).
    /// See [`OfflineHook`].
    pub fn with_offline_hook(mut self, hook: Arc<dyn OfflineHook>) -> ChatPlugin {
        self.offline_hooks.push(hook);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// How many room tasks are running (rooms stop when idle).
    pub fn running_rooms(&self) -> usize {
        self.current().map_or(0, |ctx| ctx.running_rooms())
    }

    /// The running context, if started and not stopped.
    fn current(&self) -> Option<Arc<Ctx>> {
        self.ctx.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the room tasks and lets go of the storage: each task ends
    /// once its queue is drained, and the database closes with the last
    /// of them.
    fn shut_down(&self) {
        let ctx = self.ctx.write().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(ctx) = ctx {
            ctx.stop_all();
        }
    }
}

impl std::fmt::Debug for ChatPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatPlugin")
            .field("config", &self.config)
            .field("offline_hooks", &self.offline_hooks.len())
            .field("running", &self.current().is_some())
            .finish()
    }
}

impl Drop for ChatPlugin {
    /// Stops the room tasks if the broker did not call `stop`.
    fn drop(&mut self) {
        self.shut_down();
    }
}
