//! # stompede-chat
//!
//! Chat rooms inside the Stompede broker, for stock STOMP clients
//! (`@stomp/stompjs`, `@stomp/rx-stomp`): rooms and membership, a stored
//! timeline per room with sequence numbers and an epoch, posting with
//! receipts after storage and dedupe, history replay on SUBSCRIBE with a
//! gapless resume, history pages, read markers and unread counts. The
//! protocol is described in the crate's `README.md`.
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
//! each command), `replay` (what a SUBSCRIBE replays), `timeline`
//! (stamped MESSAGEs), `reply` (answers and inbox notices), `hooks` (the
//! [`Plugin`](stompede_plugin::Plugin) implementation).

mod actor;
pub mod config;
mod dest;
mod directory;
mod hooks;
mod record;
mod replay;
mod reply;
mod repo;
mod rooms;
mod state;
pub mod store;
mod timeline;

pub use config::ChatConfig;
pub use dest::direct_room_id;
pub use timeline::STAMPED;

use rooms::Ctx;
use std::sync::{Arc, OnceLock};

/// The chat plugin. Register it with the broker
/// (`Broker::builder().plugin(ChatPlugin::new(config))`); it opens its
/// storage when the broker starts: a sled database in the broker's data
/// directory (`{store.path}/plugins/chat`), or memory when the broker
/// keeps nothing on disk.
#[derive(Debug)]
pub struct ChatPlugin {
    config: ChatConfig,
    ctx: OnceLock<Arc<Ctx>>,
    owned_subs: hooks::OwnedSubs,
}

impl ChatPlugin {
    /// A plugin with `config` (checked when the broker starts).
    pub fn new(config: ChatConfig) -> ChatPlugin {
        ChatPlugin {
            config,
            ctx: OnceLock::new(),
            owned_subs: Default::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// How many room tasks are running (rooms stop when idle).
    pub fn running_rooms(&self) -> usize {
        self.ctx.get().map_or(0, |ctx| ctx.running_rooms())
    }
}

impl Drop for ChatPlugin {
    /// Stops the room tasks, which then release the storage (the broker
    /// drops its plugins once it has shut down).
    fn drop(&mut self) {
        if let Some(ctx) = self.ctx.get() {
            ctx.stop_all();
        }
    }
}
