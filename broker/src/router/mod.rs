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

pub(crate) mod durable;
pub(crate) mod queue;
pub(crate) mod topic;
pub(crate) mod wildcard;

use crate::config::{Config, UnknownPrefixPolicy};
use crate::stats::Stats;
use crate::store::commit::Committer;
use crate::store::{Store, StoreError};
use bytestring::ByteString;
use queue::{QueueHandle, QueueRegistry};
use std::sync::Arc;
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
    /// Queue actors.
    pub queues: Arc<QueueRegistry>,
    /// Durable topic subscriptions.
    pub durable: durable::DurableBindings,
    config: Arc<Config>,
}

impl Router {
    pub(crate) fn new(
        config: Arc<Config>,
        stats: Arc<Stats>,
        store: Arc<dyn Store>,
        committer: Committer,
    ) -> Router {
        let queues = QueueRegistry::new(
            config.queues.clone(),
            Arc::clone(&stats),
            Arc::clone(&store),
            committer,
        );
        Router {
            topics: TopicTable::new(stats),
            durable: durable::DurableBindings::new(Arc::clone(&queues), store),
            queues,
            config,
        }
    }

    /// Rebuilds the stored queues; returns how many messages came back.
    pub(crate) fn recover(&self) -> Result<usize, StoreError> {
        let messages = self.queues.recover()?;
        let bindings = self.durable.recover()?;
        tracing::debug!(bindings, "durable subscriptions recovered");
        Ok(messages)
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

    /// Delivers a message of the topic table — a `/topic/` destination (and
    /// its durable subscriptions), a `/user/{login}/...` key or a reply
    /// queue — to this node's subscribers.
    pub(crate) async fn fan_out(&self, key: &ByteString, message: &Arc<stompede_plugin::Message>) {
        self.topics.publish(key, message);
        if matches!(self.route(key), Ok(Route::Topic)) {
            self.durable.publish(message).await;
        }
    }

    /// The actor for queue `name`, started on first use.
    pub(crate) fn queue(&self, name: &ByteString) -> QueueHandle {
        self.queues.queue(name)
    }

    /// Whether queue `name` exists already (has an actor).
    pub(crate) fn queue_exists(&self, name: &str) -> bool {
        self.queues.contains(name)
    }
}
