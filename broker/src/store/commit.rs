//! Group commit: publishers waiting for durability share one fsync.
//!
//! A queue actor writes a persistent message to the store (cheap, not yet
//! durable) and hands the publisher's confirmation to the [`Committer`]. The
//! committer runs one [`Store::sync`] on a blocking thread for everyone
//! waiting, and answers them all; requests that arrive meanwhile share the
//! next sync. Under the `batch` policy syncs start at most once per
//! interval. Every sync's duration goes into [`Committer::fsync_latency`].

use super::{Store, StoreError};
use crate::config::FsyncPolicy;
use crate::stats::{Histogram, FSYNC_LATENCY_BOUNDS};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Someone waiting for their write to become durable.
pub(crate) type Waiter = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// How long [`Store::sync`] calls take.
pub(crate) type FsyncHistogram = Histogram<{ FSYNC_LATENCY_BOUNDS.len() }>;

/// Hands out durability confirmations.
#[derive(Clone)]
pub(crate) struct Committer {
    policy: FsyncPolicy,
    fsync_latency: Arc<FsyncHistogram>,
    // Unbounded on purpose: every request stands for a publisher that is
    // waiting for its RECEIPT, so the number is bounded by the sessions.
    requests: mpsc::UnboundedSender<Waiter>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl Committer {
    /// Starts the commit loop for `store`.
    pub(crate) fn start(
        store: Arc<dyn Store>,
        policy: FsyncPolicy,
        interval: Duration,
    ) -> Committer {
        let (tx, rx) = mpsc::unbounded_channel();
        let fsync_latency = Arc::new(Histogram::new(&FSYNC_LATENCY_BOUNDS));
        if policy != FsyncPolicy::Never {
            let batch_wait = if policy == FsyncPolicy::Batch {
                interval
            } else {
                Duration::ZERO
            };
            tokio::spawn(commit_loop(
                store,
                rx,
                batch_wait,
                Arc::clone(&fsync_latency),
            ));
        }
        Committer {
            policy,
            fsync_latency,
            requests: tx,
        }
    }

    /// The durations of the store syncs run so far (empty under `never`).
    pub(crate) fn fsync_latency(&self) -> &FsyncHistogram {
        &self.fsync_latency
    }

    /// Calls `waiter` once everything written so far is durable (at once
    /// under the `never` policy).
    pub(crate) fn after_sync(&self, waiter: Waiter) {
        if self.policy == FsyncPolicy::Never {
            waiter(Ok(()));
            return;
        }
        if let Err(mpsc::error::SendError(waiter)) = self.requests.send(waiter) {
            waiter(Err(StoreError("the store is shutting down".into())));
        }
    }
}

/// Syncs as soon as someone waits; whoever arrives during a sync shares the
/// next one. Under `batch`, syncs start at most once per `min_gap`, so a
/// busy broker gathers more writers per fsync.
async fn commit_loop(
    store: Arc<dyn Store>,
    mut requests: mpsc::UnboundedReceiver<Waiter>,
    min_gap: Duration,
    latency: Arc<FsyncHistogram>,
) {
    let mut batch: Vec<Waiter> = Vec::new();
    let mut last_sync: Option<tokio::time::Instant> = None;
    while let Some(first) = requests.recv().await {
        batch.push(first);
        if let Some(last) = last_sync {
            tokio::time::sleep_until(last + min_gap).await;
        }
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        last_sync = Some(tokio::time::Instant::now());
        let store = Arc::clone(&store);
        let latency = Arc::clone(&latency);
        let result = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = store.sync();
            latency.observe(started.elapsed());
            result
        })
        .await
        .unwrap_or_else(|e| Err(StoreError(format!("sync task failed: {e}"))));
        if let Err(e) = &result {
            tracing::error!(error = %e, waiting = batch.len(), "store sync failed");
        }
        for waiter in batch.drain(..) {
            waiter(result.clone());
        }
    }
}
