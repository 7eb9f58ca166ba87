//! Room retention: events beyond the newest `retention_max_events`, or
//! older than `retention_max_age_secs`, are deleted (with their dedupe and
//! relation records), in bounded batches inside the room's turns. The
//! room's `low` sequence moves up; a resume from before it is answered
//! `x-recovered:false`.

use crate::actor::{Env, Turn};
use crate::record::EventKind;
use crate::repo;
use crate::state::{now_ms, State};

/// The most events one turn deletes.
const BATCH: usize = 1000;

/// How often a running room applies age retention.
pub fn interval(max_age_secs: u64) -> Option<std::time::Duration> {
    (max_age_secs > 0).then(|| std::time::Duration::from_secs((max_age_secs / 10).clamp(1, 60)))
}

/// The reaction key of a stored reaction event.
fn reaction_key(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(n, _)| n == "x-reaction")
        .map(|(_, v)| v.as_str())
}

impl State {
    /// The newest sequence number retention deletes (0: none).
    fn prune_to(&self, env: &Env, turn: &Turn) -> u64 {
        let config = &env.ctx.config;
        let (low, head) = (self.low, self.meta.head);
        if low > head {
            return 0;
        }
        let mut cut = 0;
        let kept = head - low + 1;
        if config.retention_max_events > 0 && kept > config.retention_max_events {
            cut = head - config.retention_max_events;
        }
        if config.retention_max_age_secs > 0 {
            let now = turn.clock.unwrap_or_else(now_ms);
            let oldest_kept = now.saturating_sub(config.retention_max_age_secs * 1000);
            let store = &*env.ctx.store;
            match repo::seq_at_time(store, &turn.ops, &env.id, low, head, oldest_kept) {
                Ok(first_young) => cut = cut.max(first_young.saturating_sub(1)),
                Err(e) => tracing::warn!(room = %env.id, error = %e, "retention skipped"),
            }
        }
        cut
    }

    /// Deletes up to [`BATCH`] events that retention no longer keeps.
    pub(crate) fn prune(&mut self, env: &Env, turn: &mut Turn) {
        let cut = self.prune_to(env, turn);
        if cut < self.low {
            return;
        }
        let store = &*env.ctx.store;
        // Through the turn's pending writes: what the turn stored already
        // counts, whichever turn a node applied it in.
        let events = match repo::pending_events(store, &turn.ops, &env.id, self.low, cut, BATCH) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(room = %env.id, error = %e, "retention skipped");
                return;
            }
        };
        let Some(last) = events.last().map(|e| e.seq) else {
            return;
        };
        for event in &events {
            repo::write::forget_event(&mut turn.ops, &env.id, event);
            if let Some(id) = &event.client_msg_id {
                self.forget_client_id(&event.sender, id);
            }
            match (event.kind, event.relates_to) {
                (EventKind::Edit, Some(message)) => {
                    repo::write::edit(&mut turn.ops, &env.id, message, event.seq, false);
                }
                (EventKind::Reaction, Some(message)) if event.redacted_by.is_none() => {
                    if let Some(key) = reaction_key(&event.headers) {
                        repo::write::reaction(
                            &mut turn.ops,
                            &env.id,
                            message,
                            &event.sender,
                            key,
                            None,
                        );
                    }
                }
                _ => {}
            }
        }
        self.low = last + 1;
        turn.pruned = true;
    }
}
