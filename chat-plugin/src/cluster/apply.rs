//! Every node's side of the log: a record is decoded and handed to its
//! room's task in log order (waiting while the room's queue is full: the
//! broker waits for us before the next record of the partition), answered
//! there to the waiting client if this node appended it.

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
    let here = entry.origin == cluster.node;
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
    let waiting = match (here, entry.request) {
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
        here,
        ephemeral,
        cmd,
    };
    ctx.dispatch_waiting(&room, Cmd::Log(Box::new(applied)))
        .await;
}
