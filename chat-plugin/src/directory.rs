//! Who is in which room, in memory: loaded from storage at start and kept
//! in step by the room tasks, so the session hooks can check membership
//! and list a user's rooms without waiting.

use crate::record::{Member, Role, RoomKind, RoomMeta};
use crate::repo::StoredRoom;
use std::collections::{BTreeSet, HashMap};

/// What the directory knows of one room.
#[derive(Debug, Clone)]
pub struct RoomEntry {
    /// Group or direct.
    pub kind: RoomKind,
    /// The display name.
    pub name: String,
    /// The last sequence number.
    pub head: u64,
    /// The number of `message` events.
    pub msg_count: u64,
    /// Members and invitees.
    pub members: HashMap<String, Member>,
}

impl RoomEntry {
    /// How many messages `user` has not read (0 for non-members).
    pub fn unread(&self, user: &str) -> u64 {
        match self.members.get(user) {
            Some(m) if m.role.is_member() => self.msg_count.saturating_sub(m.read_index),
            _ => 0,
        }
    }
}

/// One line of a user's room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room id.
    pub id: String,
    /// Group or direct.
    pub kind: RoomKind,
    /// The display name.
    pub name: String,
    /// The user's role.
    pub role: Role,
    /// The last sequence number.
    pub head: u64,
    /// The user's read marker.
    pub read_seq: u64,
    /// Unread messages.
    pub unread: u64,
}

/// Every room and every user's rooms.
#[derive(Debug, Default)]
pub struct Directory {
    rooms: HashMap<String, RoomEntry>,
    by_user: HashMap<String, BTreeSet<String>>,
}

impl Directory {
    /// How many rooms exist.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The directory of what storage holds.
    pub fn from_stored(rooms: Vec<StoredRoom>) -> Directory {
        let mut dir = Directory::default();
        for room in rooms {
            dir.insert_room(&room.meta, room.members);
        }
        dir
    }

    /// Adds (or replaces) a room.
    pub fn insert_room(&mut self, meta: &RoomMeta, members: Vec<(String, Member)>) {
        let entry = RoomEntry {
            kind: meta.kind,
            name: meta.name.clone(),
            head: meta.head,
            msg_count: meta.msg_count,
            members: HashMap::new(),
        };
        self.rooms.insert(meta.id.clone(), entry);
        for (user, member) in members {
            self.set_member(&meta.id, &user, Some(member));
        }
    }

    /// Forgets a room (its creation failed).
    pub fn remove_room(&mut self, room: &str) {
        if let Some(entry) = self.rooms.remove(room) {
            for user in entry.members.keys() {
                if let Some(set) = self.by_user.get_mut(user) {
                    set.remove(room);
                }
            }
        }
    }

    /// Sets or removes a member.
    pub fn set_member(&mut self, room: &str, user: &str, member: Option<Member>) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        match member {
            Some(m) => {
                entry.members.insert(user.to_owned(), m);
                self.by_user
                    .entry(user.to_owned())
                    .or_default()
                    .insert(room.to_owned());
            }
            None => {
                entry.members.remove(user);
                if let Some(set) = self.by_user.get_mut(user) {
                    set.remove(room);
                    if set.is_empty() {
                        self.by_user.remove(user);
                    }
                }
            }
        }
    }

    /// Updates a room's counters.
    pub fn set_counters(&mut self, room: &str, head: u64, msg_count: u64) {
        if let Some(entry) = self.rooms.get_mut(room) {
            entry.head = head;
            entry.msg_count = msg_count;
        }
    }

    /// A room.
    pub fn room(&self, room: &str) -> Option<&RoomEntry> {
        self.rooms.get(room)
    }

    /// The user's role in a room, if any.
    pub fn role(&self, room: &str, user: &str) -> Option<Role> {
        self.rooms.get(room)?.members.get(user).map(|m| m.role)
    }

    /// Whether `user` may read and post in `room`.
    pub fn is_member(&self, room: &str, user: &str) -> bool {
        self.role(room, user).is_some_and(Role::is_member)
    }

    /// Up to `limit` of the user's rooms (ids after `after`, in id order)
    /// and the cursor of the next page, if there is one.
    pub fn rooms_of(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<RoomSummary>, Option<String>) {
        let Some(ids) = self.by_user.get(user) else {
            return (Vec::new(), None);
        };
        let tail: Box<dyn Iterator<Item = &String>> = match after {
            Some(after) => Box::new(
                ids.range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            ),
            None => Box::new(ids.iter()),
        };
        let mut page = Vec::new();
        let mut more = false;
        for id in tail {
            if page.len() == limit {
                more = true;
                break;
            }
            let Some(entry) = self.rooms.get(id) else {
                continue;
            };
            let Some(member) = entry.members.get(user) else {
                continue;
            };
            page.push(RoomSummary {
                id: id.clone(),
                kind: entry.kind,
                name: entry.name.clone(),
                role: member.role,
                head: entry.head,
                read_seq: member.read_seq,
                unread: entry.unread(user),
            });
        }
        let next = if more {
            page.last().map(|r| r.id.clone())
        } else {
            None
        };
        (page, next)
    }

    /// Every room the user is a member of, with its unread count.
    pub fn unread_of(&self, user: &str) -> Vec<(String, u64, u64)> {
        let Some(ids) = self.by_user.get(user) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| {
                let entry = self.rooms.get(id)?;
                let member = entry.members.get(user)?;
                member
                    .role
                    .is_member()
                    .then(|| (id.clone(), entry.unread(user), member.read_seq))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: &str) -> RoomMeta {
        RoomMeta {
            id: id.into(),
            kind: RoomKind::Group,
            name: id.into(),
            public: false,
            epoch: "e".into(),
            created_at: 0,
            created_by: "a".into(),
            head: 10,
            msg_count: 8,
        }
    }

    fn member(role: Role, read_index: u64) -> Member {
        Member {
            read_index,
            ..Member::new(role)
        }
    }

    #[test]
    fn lists_pages_and_counts_unread() {
        let mut dir = Directory::default();
        for id in ["a", "b", "c", "d", "e"] {
            dir.insert_room(&meta(id), vec![("u".into(), member(Role::Member, 3))]);
        }
        dir.set_member("e", "u", Some(member(Role::Invited, 0)));
        let (page, next) = dir.rooms_of("u", None, 2);
        assert_eq!(
            page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(next.as_deref(), Some("b"));
        let (page, next) = dir.rooms_of("u", Some("b"), 3);
        assert_eq!(page.len(), 3);
        assert_eq!(next, None);
        assert_eq!(page[0].unread, 5);
        assert_eq!(page[2].unread, 0, "invitees have no unread");
        assert!(dir.is_member("a", "u"));
        assert!(!dir.is_member("e", "u"));
        assert_eq!(dir.unread_of("u").len(), 4);
        dir.set_member("a", "u", None);
        assert!(!dir.is_member("a", "u"));
        dir.remove_room("b");
        assert_eq!(dir.rooms_of("u", None, 10).0.len(), 3);
    }
}
