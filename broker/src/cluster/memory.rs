//! An in-process log backend: several brokers in one process share a
//! [`MemoryLogBus`] and form a cluster without Kafka (tests, embedders that
//! want to try cluster-aware plugins). Nothing is persisted.

use super::partition::partition_for;
use super::LogBackend;
use bytes::Bytes;
use bytestring::ByteString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use stompede_plugin::{AppendFuture, LogPosition, LogRecord, ReplicatedLog};
use tokio::sync::{mpsc, watch};

/// Records a reader hands over before it waits for the receiver.
const READ_BUFFER: usize = 256;

/// Plugin logs shared by the brokers of one process. Clone it freely; it
/// outlives the brokers, so a broker started again with the same node id
/// finds the log as it was.
#[derive(Clone)]
pub struct MemoryLogBus {
    partitions: u32,
    logs: Arc<Mutex<HashMap<String, Arc<MemoryLog>>>>,
}

impl MemoryLogBus {
    /// A bus whose logs have `partitions` partitions (at least one).
    pub fn new(partitions: u32) -> MemoryLogBus {
        MemoryLogBus {
            partitions: partitions.max(1),
            logs: Arc::default(),
        }
    }

    /// The backend for the node `node_id`, for
    /// [`crate::BrokerBuilder::cluster_log`].
    pub fn node(&self, node_id: &str) -> Arc<dyn LogBackend> {
        Arc::new(MemoryNode {
            bus: self.clone(),
            node_id: node_id.to_owned(),
        })
    }

    fn log(&self, name: &str) -> Arc<MemoryLog> {
        let mut logs = self.logs.lock().unwrap_or_else(PoisonError::into_inner);
        let log = logs.entry(name.to_owned()).or_insert_with(|| {
            Arc::new(MemoryLog {
                partitions: (0..self.partitions).map(|_| Mutex::default()).collect(),
                appended: watch::channel(0).0,
            })
        });
        Arc::clone(log)
    }
}

/// One log: the records of each partition, and a signal for readers.
struct MemoryLog {
    partitions: Vec<Mutex<Vec<(ByteString, Bytes)>>>,
    appended: watch::Sender<u64>,
}

impl MemoryLog {
    fn partition(&self, p: u32) -> Option<MutexGuard<'_, Vec<(ByteString, Bytes)>>> {
        let records = self.partitions.get(p as usize)?;
        Some(records.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct MemoryNode {
    bus: MemoryLogBus,
    node_id: String,
}

impl LogBackend for MemoryNode {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn open(&self, name: &str) -> Result<Arc<dyn ReplicatedLog>, String> {
        Ok(Arc::new(MemoryWriter {
            log: self.bus.log(name),
            node_id: ByteString::from(self.node_id.as_str()),
        }))
    }

    fn read(
        &self,
        name: &str,
        starts: Vec<(u32, Option<u64>)>,
    ) -> Result<mpsc::Receiver<LogRecord>, String> {
        let log = self.bus.log(name);
        let (tx, rx) = mpsc::channel(READ_BUFFER);
        let mut next: Vec<(u32, u64)> = starts
            .into_iter()
            .map(|(p, from)| (p, from.unwrap_or(0)))
            .collect();
        tokio::spawn(async move {
            let mut appended = log.appended.subscribe();
            loop {
                appended.borrow_and_update();
                for (partition, offset) in &mut next {
                    let batch: Vec<_> = match log.partition(*partition) {
                        Some(records) => {
                            records.get(*offset as usize..).unwrap_or_default().to_vec()
                        }
                        None => continue,
                    };
                    for (origin, payload) in batch {
                        let record = LogRecord {
                            position: LogPosition {
                                partition: *partition,
                                offset: *offset,
                            },
                            origin,
                            payload,
                        };
                        if tx.send(record).await.is_err() {
                            return;
                        }
                        *offset += 1;
                    }
                }
                tokio::select! {
                    changed = appended.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

struct MemoryWriter {
    log: Arc<MemoryLog>,
    node_id: ByteString,
}

impl ReplicatedLog for MemoryWriter {
    fn node_id(&self) -> &str {
        &self.node_id
    }

    fn partitions(&self) -> u32 {
        self.log.partitions.len() as u32
    }

    fn partition_for(&self, key: &str) -> u32 {
        partition_for(key, self.partitions())
    }

    fn append(&self, partition: u32, payload: Bytes) -> AppendFuture {
        let appended = match self.log.partition(partition) {
            Some(mut records) => {
                records.push((self.node_id.clone(), payload));
                Ok(LogPosition {
                    partition,
                    offset: records.len() as u64 - 1,
                })
            }
            None => Err(format!("the log has no partition {partition}")),
        };
        if appended.is_ok() {
            self.log.appended.send_modify(|n| *n += 1);
        }
        Box::pin(std::future::ready(appended))
    }
}
