//! The chat's key layout over a [`KvStore`] and typed reads and writes.
//!
//! Keys (room ids and user names never contain NUL):
//! - `m{room}` → [`RoomMeta`]
//! - `e{room}\0{seq: u64 BE}` → [`Event`]: a room's timeline is one
//!   contiguous, ordered key range, so a page is one range read;
//! - `u{room}\0{user}` → [`Member`];
//! - `d{room}\0{sender}\0{client msg id}` → seq (dedupe);
//! - `r{room}\0{message seq BE}{user}\0{reaction}` → the reaction's seq
//!   (one reaction per user, key and message);
//! - `x{room}\0{message seq BE}{edit seq BE}` → nothing (a message's
//!   edits, purged with it).
//! - cluster mode: `a{room}` → the offset (u64 BE) of the newest log record
//!   the room stored; `w{partition: u32 BE}` → where reading that
//!   partition of the log resumes.

use crate::record::{Event, Member, RoomMeta};
use crate::store::{KvStore, Op, StoreError};

fn key(tag: u8, room: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + room.len() + rest.len());
    k.push(tag);
    k.extend_from_slice(room.as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

fn meta_key(room: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + room.len());
    k.push(b'm');
    k.extend_from_slice(room.as_bytes());
    k
}

fn event_key(room: &str, seq: u64) -> Vec<u8> {
    key(b'e', room, &seq.to_be_bytes())
}

fn member_key(room: &str, user: &str) -> Vec<u8> {
    key(b'u', room, user.as_bytes())
}

fn dedupe_key(room: &str, sender: &str, client_msg_id: &str) -> Vec<u8> {
    let mut rest = Vec::with_capacity(sender.len() + 1 + client_msg_id.len());
    rest.extend_from_slice(sender.as_bytes());
    rest.push(0);
    rest.extend_from_slice(client_msg_id.as_bytes());
    key(b'd', room, &rest)
}

fn reaction_key(room: &str, message: u64, user: &str, reaction: &str) -> Vec<u8> {
    let mut rest = Vec::with_capacity(10 + user.len() + reaction.len());
    rest.extend_from_slice(&message.to_be_bytes());
    rest.extend_from_slice(user.as_bytes());
    rest.push(0);
    rest.extend_from_slice(reaction.as_bytes());
    key(b'r', room, &rest)
}

fn applied_key(room: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + room.len());
    k.push(b'a');
    k.extend_from_slice(room.as_bytes());
    k
}

fn watermark_key(partition: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(5);
    k.push(b'w');
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

fn edit_key(room: &str, message: u64, edit: u64) -> Vec<u8> {
    let mut rest = [0u8; 16];
    rest[..8].copy_from_slice(&message.to_be_bytes());
    rest[8..].copy_from_slice(&edit.to_be_bytes());
    key(b'x', room, &rest)
}

/// The end of the key range that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

fn damaged(what: &str) -> StoreError {
    StoreError(format!("damaged {what} record"))
}

/// Writes: each adds to a batch that is applied atomically.
pub mod write {
    use super::*;

    /// Stores a room's description.
    pub fn meta(ops: &mut Vec<Op>, meta: &RoomMeta) {
        ops.push(Op::Put(meta_key(&meta.id), meta.encode()));
    }

    /// Stores an event.
    pub fn event(ops: &mut Vec<Op>, room: &str, event: &Event) {
        ops.push(Op::Put(event_key(room, event.seq), event.encode()));
        if let Some(id) = &event.client_msg_id {
            ops.push(Op::Put(
                dedupe_key(room, &event.sender, id),
                event.seq.to_be_bytes().to_vec(),
            ));
        }
    }

    /// Records (`Some(seq)`) or forgets a user's reaction to a message.
    pub fn reaction(
        ops: &mut Vec<Op>,
        room: &str,
        message: u64,
        user: &str,
        reaction: &str,
        seq: Option<u64>,
    ) {
        let k = reaction_key(room, message, user, reaction);
        ops.push(match seq {
            Some(seq) => Op::Put(k, seq.to_be_bytes().to_vec()),
            None => Op::Delete(k),
        });
    }

    /// Records (or, with `keep = false`, forgets) an edit of a message.
    pub fn edit(ops: &mut Vec<Op>, room: &str, message: u64, edit: u64, keep: bool) {
        let k = edit_key(room, message, edit);
        ops.push(if keep {
            Op::Put(k, Vec::new())
        } else {
            Op::Delete(k)
        });
    }

    /// Removes an event and its dedupe record.
    pub fn forget_event(ops: &mut Vec<Op>, room: &str, event: &Event) {
        ops.push(Op::Delete(event_key(room, event.seq)));
        if let Some(id) = &event.client_msg_id {
            ops.push(Op::Delete(dedupe_key(room, &event.sender, id)));
        }
    }

    /// Cluster mode: the offset of the newest log record a room stored.
    pub fn applied(ops: &mut Vec<Op>, room: &str, offset: u64) {
        ops.push(Op::Put(applied_key(room), offset.to_be_bytes().to_vec()));
    }

    /// Cluster mode: every record of `partition` below `offset` is stored.
    pub fn watermark(ops: &mut Vec<Op>, partition: u32, offset: u64) {
        ops.push(Op::Put(
            watermark_key(partition),
            offset.to_be_bytes().to_vec(),
        ));
    }

    /// Stores a member's state, or removes the member.
    pub fn member(ops: &mut Vec<Op>, room: &str, user: &str, member: Option<&Member>) {
        let k = member_key(room, user);
        ops.push(match member {
            Some(m) => Op::Put(k, m.encode()),
            None => Op::Delete(k),
        });
    }
}

/// A room as loaded from storage.
#[derive(Debug, Clone)]
pub struct StoredRoom {
    /// Its description and counters.
    pub meta: RoomMeta,
    /// Its members and invitees.
    pub members: Vec<(String, Member)>,
}

/// Every room, for the directory at start.
pub fn load_rooms(store: &dyn KvStore) -> Result<Vec<StoredRoom>, StoreError> {
    let mut rooms = Vec::new();
    let mut start = b"m".to_vec();
    let end = b"n".to_vec();
    loop {
        let page = store.range(&start, &end, false, 1024)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let mut next = last.clone();
        next.push(0);
        for (_, value) in page {
            let meta = RoomMeta::decode(&value).ok_or_else(|| damaged("room"))?;
            let members = load_members(store, &meta.id)?;
            rooms.push(StoredRoom { meta, members });
        }
        start = next;
    }
    Ok(rooms)
}

/// One room, if it exists.
pub fn load_room(store: &dyn KvStore, room: &str) -> Result<Option<StoredRoom>, StoreError> {
    let Some(bytes) = store.get(&meta_key(room))? else {
        return Ok(None);
    };
    let meta = RoomMeta::decode(&bytes).ok_or_else(|| damaged("room"))?;
    let members = load_members(store, room)?;
    Ok(Some(StoredRoom { meta, members }))
}

fn load_members(store: &dyn KvStore, room: &str) -> Result<Vec<(String, Member)>, StoreError> {
    let prefix = key(b'u', room, b"");
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    let mut start = prefix.clone();
    loop {
        let page = store.range(&start, &end, false, 4096)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        let mut next = last.clone();
        next.push(0);
        for (k, v) in page {
            let user =
                String::from_utf8(k[prefix.len()..].to_vec()).map_err(|_| damaged("member key"))?;
            out.push((user, Member::decode(&v).ok_or_else(|| damaged("member"))?));
        }
        start = next;
    }
    Ok(out)
}

/// Up to `limit` events with `from <= seq <= to`, ascending, or
/// descending (the newest first) with `reverse`.
pub fn events(
    store: &dyn KvStore,
    room: &str,
    from: u64,
    to: u64,
    reverse: bool,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    if from > to || limit == 0 {
        return Ok(Vec::new());
    }
    let (start, end) = event_range(room, from, to);
    store
        .range(&start, &end, reverse, limit)?
        .into_iter()
        .map(|(_, v)| Event::decode(&v).ok_or_else(|| damaged("event")))
        .collect()
}

/// The store keys of `room`'s events with `from <= seq <= to`: start
/// (inclusive) and end (exclusive).
fn event_range(room: &str, from: u64, to: u64) -> (Vec<u8>, Vec<u8>) {
    let end = match to.checked_add(1) {
        Some(after) => event_key(room, after),
        None => prefix_end(&key(b'e', room, b"")),
    };
    (event_key(room, from), end)
}

/// Up to `limit` events with `from <= seq <= to`, ascending, as they are
/// once `pending` (a turn's writes, not yet applied) is applied.
pub fn pending_events(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    from: u64,
    to: u64,
    limit: usize,
) -> Result<Vec<Event>, StoreError> {
    if from > to || limit == 0 {
        return Ok(Vec::new());
    }
    let (start, end) = event_range(room, from, to);
    let within = |k: &Vec<u8>| k.as_slice() >= start.as_slice() && k.as_slice() < end.as_slice();
    let deletes = pending
        .iter()
        .filter(|op| matches!(op, Op::Delete(k) if within(k)))
        .count();
    let mut merged: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = store
        .range(&start, &end, false, limit.saturating_add(deletes))?
        .into_iter()
        .collect();
    for op in pending {
        match op {
            Op::Put(k, v) if within(k) => {
                merged.insert(k.clone(), v.clone());
            }
            Op::Delete(k) if within(k) => {
                merged.remove(k);
            }
            _ => {}
        }
    }
    merged
        .into_values()
        .take(limit)
        .map(|v| Event::decode(&v).ok_or_else(|| damaged("event")))
        .collect()
}

/// Cluster mode: the offset of the newest log record `room` stored.
pub fn applied(store: &dyn KvStore, room: &str) -> Result<Option<u64>, StoreError> {
    number(store.get(&applied_key(room))?)
}

/// Cluster mode: where reading `partition` resumes (every record below is
/// stored), if the node stored any record of it.
pub fn watermark(store: &dyn KvStore, partition: u32) -> Result<Option<u64>, StoreError> {
    number(store.get(&watermark_key(partition))?)
}

fn number(value: Option<Vec<u8>>) -> Result<Option<u64>, StoreError> {
    value
        .map(|v| {
            v.try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| damaged("log position"))
        })
        .transpose()
}

/// One event.
pub fn event(store: &dyn KvStore, room: &str, seq: u64) -> Result<Option<Event>, StoreError> {
    pending_event(store, &[], room, seq)
}

/// The value of `key` once `pending` (a turn's writes, not yet applied)
/// is applied.
fn get_through(
    store: &dyn KvStore,
    pending: &[Op],
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    for op in pending.iter().rev() {
        match op {
            Op::Put(k, v) if k == key => return Ok(Some(v.clone())),
            Op::Delete(k) if k == key => return Ok(None),
            _ => {}
        }
    }
    store.get(key)
}

/// One event, as it is once `pending` is applied.
pub fn pending_event(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    seq: u64,
) -> Result<Option<Event>, StoreError> {
    match get_through(store, pending, &event_key(room, seq))? {
        Some(v) => Event::decode(&v).map(Some).ok_or_else(|| damaged("event")),
        None => Ok(None),
    }
}

/// The oldest stored sequence number of a room (`None`: no events).
pub fn first_seq(store: &dyn KvStore, room: &str) -> Result<Option<u64>, StoreError> {
    let prefix = key(b'e', room, b"");
    let end = prefix_end(&prefix);
    Ok(store
        .range(&prefix, &end, false, 1)?
        .first()
        .and_then(|(k, _)| k[prefix.len()..].try_into().ok())
        .map(u64::from_be_bytes))
}

/// The first sequence number in `low..=head` whose event is at or after
/// `ts` (ms), by binary search (timestamps never decrease), as it is once
/// `pending` is applied; `head + 1` if none.
pub fn seq_at_time(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    low: u64,
    head: u64,
    ts: u64,
) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (low, head.saturating_add(1));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // A missing event (never expected inside low..=head) counts as old.
        let at = pending_event(store, pending, room, mid)?.map_or(0, |e| e.ts);
        if at < ts {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The sequence number an earlier post with this client message id got,
/// once `pending` is applied.
pub fn deduped(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    sender: &str,
    client_msg_id: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(
        get_through(store, pending, &dedupe_key(room, sender, client_msg_id))?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes),
    )
}

/// The sequence number of `user`'s `reaction` to `message`, if any,
/// once `pending` is applied.
pub fn reaction(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    message: u64,
    user: &str,
    reaction: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(
        get_through(store, pending, &reaction_key(room, message, user, reaction))?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes),
    )
}

/// The sequence numbers of a message's edits (at most `limit` stored
/// ones, plus those in `pending`), ascending.
pub fn edits_of(
    store: &dyn KvStore,
    pending: &[Op],
    room: &str,
    message: u64,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let prefix = key(b'x', room, &message.to_be_bytes());
    let end = prefix_end(&prefix);
    let mut keys: std::collections::BTreeSet<Vec<u8>> = store
        .range(&prefix, &end, false, limit)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    for op in pending {
        match op {
            Op::Put(k, _) if k.starts_with(&prefix) => {
                keys.insert(k.clone());
            }
            Op::Delete(k) if k.starts_with(&prefix) => {
                keys.remove(k);
            }
            _ => {}
        }
    }
    Ok(keys
        .iter()
        .filter_map(|k| k[prefix.len()..].try_into().ok().map(u64::from_be_bytes))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventKind, Role, RoomKind};
    use crate::store::MemoryStore;
    use bytes::Bytes;

    fn ev(seq: u64, ts: u64) -> Event {
        Event {
            seq,
            ts,
            kind: EventKind::Message,
            sender: "a".into(),
            target: None,
            client_msg_id: Some(format!("c{seq}")),
            msg_index: seq,
            headers: vec![],
            body: Bytes::from(format!("m{seq}")),
            relates_to: None,
            redacted_by: None,
        }
    }

    #[test]
    fn rooms_events_members_and_dedupe() {
        let store = MemoryStore::default();
        let mut ops = Vec::new();
        for room in ["r", "r2", "rr"] {
            write::meta(
                &mut ops,
                &RoomMeta {
                    id: room.into(),
                    kind: RoomKind::Group,
                    name: room.into(),
                    public: false,
                    epoch: "e".into(),
                    created_at: 0,
                    created_by: "a".into(),
                    head: 0,
                    msg_count: 0,
                },
            );
            write::member(&mut ops, room, "a", Some(&Member::new(Role::Owner)));
        }
        for seq in 1..=300 {
            write::event(&mut ops, "r", &ev(seq, 1000 + seq * 10));
            write::event(&mut ops, "rr", &ev(seq, 0));
        }
        store.apply(ops).expect("apply");

        let rooms = load_rooms(&store).expect("rooms");
        assert_eq!(rooms.len(), 3);
        assert!(rooms.iter().all(|r| r.members.len() == 1));
        let page = events(&store, "r", 101, 300, true, 50).expect("page");
        assert_eq!(page.first().map(|e| e.seq), Some(300));
        assert_eq!(page.last().map(|e| e.seq), Some(251));
        let page = events(&store, "r", 290, u64::MAX, false, 50).expect("page");
        assert_eq!(page.len(), 11);
        assert_eq!(first_seq(&store, "r").expect("first"), Some(1));
        assert_eq!(first_seq(&store, "r2").expect("first"), None);
        assert_eq!(seq_at_time(&store, &[], "r", 1, 300, 1055).expect("ts"), 6);
        assert_eq!(seq_at_time(&store, &[], "r", 1, 300, 0).expect("ts"), 1);
        assert_eq!(
            seq_at_time(&store, &[], "r", 1, 300, 99_999).expect("ts"),
            301
        );
        assert_eq!(
            deduped(&store, &[], "r", "a", "c42").expect("dedupe"),
            Some(42)
        );
        assert_eq!(deduped(&store, &[], "r", "b", "c42").expect("dedupe"), None);
        assert!(load_room(&store, "nope").expect("load").is_none());

        let mut ops = Vec::new();
        write::reaction(&mut ops, "r", 7, "a", "+1", Some(9));
        write::edit(&mut ops, "r", 7, 10, true);
        write::edit(&mut ops, "r", 7, 12, true);
        write::edit(&mut ops, "r", 8, 11, true);
        store.apply(ops).expect("apply");
        assert_eq!(
            reaction(&store, &[], "r", 7, "a", "+1").expect("get"),
            Some(9)
        );
        assert_eq!(reaction(&store, &[], "r", 7, "a", "+").expect("get"), None);
        assert_eq!(
            edits_of(&store, &[], "r", 7, 10).expect("edits"),
            vec![10, 12]
        );
        let mut pending = Vec::new();
        write::reaction(&mut pending, "r", 7, "a", "+1", None);
        write::edit(&mut pending, "r", 7, 10, false);
        write::edit(&mut pending, "r", 7, 13, true);
        assert_eq!(
            reaction(&store, &pending, "r", 7, "a", "+1").expect("get"),
            None
        );
        assert_eq!(
            edits_of(&store, &pending, "r", 7, 10).expect("edits"),
            vec![12, 13]
        );
        write::event(&mut pending, "r", &ev(400, 0));
        assert!(pending_event(&store, &pending, "r", 400)
            .expect("pending")
            .is_some());
        let mut ops = Vec::new();
        write::forget_event(&mut ops, "r", &ev(1, 0));
        store.apply(ops).expect("apply");
        assert_eq!(first_seq(&store, "r").expect("first"), Some(2));
        assert_eq!(deduped(&store, &[], "r", "a", "c1").expect("dedupe"), None);
    }
}
