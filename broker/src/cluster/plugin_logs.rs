//! Hands each plugin the records of its replicated log: one task per
//! partition, so a slow room on one partition does not hold up the others,
//! and records of a partition strictly in order.

use super::LogBackend;
use std::collections::HashMap;
use std::sync::Arc;
use stompede_plugin::{LogRecord, Plugin, ReplicatedLog};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Records queued for one partition's task.
const PARTITION_BUFFER: usize = 64;

/// The plugin logs of a node, by log name.
#[derive(Default)]
pub(crate) struct PluginLogs {
    backend: Option<Arc<dyn LogBackend>>,
    writers: HashMap<String, Arc<dyn ReplicatedLog>>,
}

impl PluginLogs {
    /// Opens the log of every plugin that keeps one. Without a backend
    /// (a single node) no plugin gets a log.
    pub(crate) fn open(
        backend: Option<Arc<dyn LogBackend>>,
        plugins: &[Arc<dyn Plugin>],
    ) -> Result<PluginLogs, String> {
        let mut writers = HashMap::new();
        if let Some(backend) = &backend {
            for name in plugins.iter().filter_map(|p| p.log_name()) {
                let log = backend
                    .open(name)
                    .map_err(|e| format!("cannot open the plugin log {name}: {e}"))?;
                writers.insert(name.to_owned(), log);
            }
        }
        Ok(PluginLogs { backend, writers })
    }

    /// The log named `name`, if this node is in a cluster.
    pub(crate) fn writer(&self, name: &str) -> Option<Arc<dyn ReplicatedLog>> {
        self.writers.get(name).cloned()
    }

    /// Starts feeding every plugin its log from where it asks to resume,
    /// until `stop` is cancelled.
    pub(crate) fn start_reading(
        &self,
        plugins: &[Arc<dyn Plugin>],
        stop: &CancellationToken,
    ) -> Result<(), String> {
        let Some(backend) = &self.backend else {
            return Ok(());
        };
        for plugin in plugins {
            let Some(name) = plugin.log_name() else {
                continue;
            };
            let partitions = self.writers.get(name).map_or(0, |w| w.partitions());
            let starts = (0..partitions)
                .map(|p| (p, plugin.log_resume_offset(p)))
                .collect();
            let records = backend.read(name, starts)?;
            tokio::spawn(dispatch(
                Arc::clone(plugin),
                partitions,
                records,
                stop.clone(),
            ));
        }
        Ok(())
    }
}

/// Splits the log's records by partition, one applying task each.
async fn dispatch(
    plugin: Arc<dyn Plugin>,
    partitions: u32,
    mut records: mpsc::Receiver<LogRecord>,
    stop: CancellationToken,
) {
    let mut lanes = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        let (tx, rx) = mpsc::channel(PARTITION_BUFFER);
        tokio::spawn(apply_in_order(Arc::clone(&plugin), rx, stop.clone()));
        lanes.push(tx);
    }
    loop {
        let record = tokio::select! {
            () = stop.cancelled() => return,
            record = records.recv() => record,
        };
        let Some(record) = record else { return };
        let Some(lane) = lanes.get(record.position.partition as usize) else {
            tracing::warn!(
                partition = record.position.partition,
                "record of an unknown partition"
            );
            continue;
        };
        if lane.send(record).await.is_err() {
            return;
        }
    }
}

async fn apply_in_order(
    plugin: Arc<dyn Plugin>,
    mut records: mpsc::Receiver<LogRecord>,
    stop: CancellationToken,
) {
    loop {
        let record = tokio::select! {
            () = stop.cancelled() => return,
            record = records.recv() => record,
        };
        let Some(record) = record else { return };
        tokio::select! {
            () = stop.cancelled() => return,
            () = plugin.on_log_record(record) => {}
        }
    }
}
