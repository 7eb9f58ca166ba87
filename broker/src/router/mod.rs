//! Destinations and subscriptions. The router knows no frames and no
//! sockets: sessions hand it messages and subscriptions.
//!
//! | prefix | kind |
//! |---|---|
//! | `/topic/` | publish–subscribe, wildcards `*` and `#` |
//! | `/queue/` | competing consumers (one actor per queue) |
//! | `/temp-queue/` | a connection's private reply queue |
//! | `/reply-queue/` | the rewritten address of someone's temp queue |
//! | `/user/` | every session of one user |

pub(crate) mod queue;
pub(crate) mod topic;
pub(crate) mod wildcard;

use crate::config::{Config, UnknownPrefixPolicy};
use crate::stats::Stats;
use bytestring::ByteString;
use queue::QueueHandle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use topic::TopicTable;

/// Where a destination routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// The topic table, under this key.
    Topic,
    /// A queue actor.
    Queue,
    /// The sender's own temp queue with this name.
    TempQueue(&'a str),
    /// Another connection's temp queue (topic table key = the destination).
    ReplyQueue,
    /// `/user/{user}/{rest}` (SEND) or `/user/{rest}` (SUBSCRIBE).
    User(&'a str),
}

/// Why a destination cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// No known prefix and the policy is `error`.
    #[error("unknown destination prefix in '{0}' (use /topic/, /queue/, /temp-queue/ or /user/)")]
    UnknownPrefix(String),
    /// Nothing after the prefix.
    #[error("destination '{0}' has an empty name")]
    EmptyName(String),
}

/// The broker's routing state.
#[derive(Debug)]
pub(crate) struct Router {
    /// Topic-like destinations.
    pub topics: TopicTable,
    // std Mutex: only held to look up or create a handle.
    queues: Mutex<HashMap<ByteString, QueueHandle>>,
    config: Arc<Config>,
    stats: Arc<Stats>,
}

impl Router {
    pub(crate) fn new(config: Arc<Config>, stats: Arc<Stats>) -> Router {
        Router {
            topics: TopicTable::default(),
            queues: Mutex::new(HashMap::new()),
            config,
            stats,
        }
    }

    /// Classifies a destination.
    pub(crate) fn route<'a>(&self, destination: &'a str) -> Result<Route<'a>, RouteError> {
        let named = |rest: &'a str, route: Route<'a>| {
            if rest.is_empty() {
                Err(RouteError::EmptyName(destination.to_owned()))
            } else {
                Ok(route)
            }
        };
        if let Some(rest) = destination.strip_prefix("/topic/") {
            named(rest, Route::Topic)
        } else if let Some(rest) = destination.strip_prefix("/queue/") {
            named(rest, Route::Queue)
        } else if let Some(rest) = destination.strip_prefix("/temp-queue/") {
            named(rest, Route::TempQueue(rest))
        } else if let Some(rest) = destination.strip_prefix("/reply-queue/") {
            named(rest, Route::ReplyQueue)
        } else if let Some(rest) = destination.strip_prefix("/user/") {
            named(rest, Route::User(rest))
        } else {
            match self.config.routing.unknown_prefix {
                UnknownPrefixPolicy::Error => {
                    Err(RouteError::UnknownPrefix(destination.to_owned()))
                }
                UnknownPrefixPolicy::Topic => Ok(Route::Topic),
                UnknownPrefixPolicy::Queue => Ok(Route::Queue),
            }
        }
    }

    /// The actor for queue `name`, started on first use.
    pub(crate) fn queue(&self, name: &ByteString) -> QueueHandle {
        let mut queues = crate::session::outbox::lock(&self.queues);
        queues
            .entry(name.clone())
            .or_insert_with(|| {
                QueueHandle::spawn(
                    name.clone(),
                    self.config.queues.clone(),
                    Arc::clone(&self.stats),
                )
            })
            .clone()
    }
}
