//! Without the `kafka` feature a node cannot join a cluster: this type has
//! no values, so `Option<Arc<Bridge>>` is always `None` and the code that
//! uses the bridge still compiles.

use super::LogBackend;
use crate::broker::Shared;
use crate::config::ClusterConfig;
use std::sync::{Arc, Weak};
use stompede_plugin::Message;

/// Resolves once the record is stored (never made without Kafka).
pub(crate) type Published = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<stompede_plugin::LogPosition, String>> + Send>,
>;

/// Why a record could not be sent.
#[derive(Debug, thiserror::Error)]
#[error("this build of stompede has no Kafka support")]
pub(crate) struct PublishError;

/// The Kafka bridge of a build without Kafka: never constructed.
pub(crate) enum Bridge {}

use super::ClusterGauges;

impl Bridge {
    pub(crate) async fn connect(
        _config: &ClusterConfig,
        _plugin_logs: &[String],
    ) -> Result<Arc<Bridge>, String> {
        Err("[cluster] enabled, but this stompede was built without the `kafka` feature".into())
    }

    pub(crate) fn start(self: &Arc<Self>, _shared: Weak<Shared>) -> Result<(), String> {
        match **self {}
    }

    pub(crate) fn plugin_log_backend(self: &Arc<Self>) -> Arc<dyn LogBackend> {
        match **self {}
    }

    pub(crate) async fn flush(self: &Arc<Self>, _timeout: std::time::Duration) {
        match **self {}
    }

    pub(crate) async fn subscribed(&self, _key: &str) {
        match *self {}
    }

    pub(crate) async fn durable_created(self: &Arc<Self>, _queue: &str) {
        match **self {}
    }

    pub(crate) fn is_reachable(&self) -> bool {
        match *self {}
    }

    pub(crate) fn gauges(&self) -> ClusterGauges {
        match *self {}
    }

    pub(crate) fn publish_topic(
        &self,
        _key: &str,
        _message: &Message,
        _delivered_here: bool,
    ) -> Result<Published, PublishError> {
        match *self {}
    }

    pub(crate) fn publish_queue(
        &self,
        _name: &str,
        _message: &Message,
    ) -> Result<Published, PublishError> {
        match *self {}
    }
}
