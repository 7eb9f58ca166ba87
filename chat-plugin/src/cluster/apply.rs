//! Every node's side of the log: a record is decoded and handed to its
//! room's task in log order (waiting while the room's queue is full: the
//! broker waits for us before the next record of the partition), answered
//! there to the waiting client if this start of this node appended it.
//!
//! "Ours" is node id *and* incarnation: a node started again under its id
//! reads its old records again (all of them, with an empty store) while
//! its new clients wait, and request ids restart with every start.

use super::{command, replica_caller, Entry, Op};
use crate::dest;
use crate::rooms::{Applied, Cmd, Ctx};
use std::sync::Arc;
use stompede_plugin::LogRecord;

/// Applies one record of the chat log.
pub async fn apply_record(ctx: &Arc<Ctx>, record: LogRecord) {
    let Some(cluster) = &ctx.cluster else {
        return;
    };
    let position = record.position;
    let Some(entry) = Entry::decode(&record.payload) else {
        tracing::error!(
            partition = position.partition,
            offset = position.offset,
            "chat log record damaged or of an unknown version: skipped"
        );
        cluster.track.skip(position.partition, position.offset);
        return;
    };
    // This node id appended it (in this start or an earlier one) …
    let here = cluster.is_this_node(&entry);
    // … and this start did.
    let ours = cluster.is_ours(&entry);
    if entry.room.is_empty() {
        // A node (re)started: what it showed as present is gone.
        cluster.track.skip(position.partition, position.offset);
        if !here && entry.op == Op::Presence(false) {
            for room in ctx.running_room_ids() {
                let cmd = Cmd::RemotePresence {
                    node: entry.origin.clone(),
                    user: String::new(),
                    online: false,
                };
                ctx.dispatch_waiting(&room, cmd).await;
            }
        }
        return;
    }
    if dest::check_room_id(&entry.room).is_err() {
        tracing::error!(room = %entry.room, "chat log record for an invalid room id: skipped");
        cluster.track.skip(position.partition, position.offset);
        return;
    }
    if here && !ours && matches!(entry.op, Op::Presence(_)) {
        // Presence through this node before it started again: gone with
        // that start (the other nodes forget it at this start's record).
        cluster.track.skip(position.partition, position.offset);
        return;
    }
    let waiting = match (ours, entry.request) {
        (true, request) if request != 0 => cluster.pending.take(request),
        _ => None,
    };
    let caller = match waiting {
        Some(waiting) => waiting.caller,
        None => replica_caller(&entry.user, &ctx.config.inbox),
    };
    let room = entry.room.clone();
    let ts = entry.ts;
    let ephemeral = entry.op.is_ephemeral();
    let cmd = command(entry, caller, position);
    cluster.track.begin(position.partition, position.offset);
    let applied = Applied {
        position,
        ts,
        ours,
        ephemeral,
        cmd,
    };
    ctx.dispatch_waiting(&room, Cmd::Log(Box::new(applied)))
        .await;
}
