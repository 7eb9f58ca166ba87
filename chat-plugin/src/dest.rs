//! Chat destinations: what a SEND or SUBSCRIBE names, and room ids.

/// A command on one room (`/room/{id}/{verb}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Join (public room, or invited).
    Join,
    /// Leave.
    Leave,
    /// Invite `x-user`.
    Invite,
    /// Remove `x-user` (owner and moderators).
    Kick,
    /// Move the read marker to `x-seq`.
    Read,
    /// A page of history.
    History,
    /// The room's description and members.
    Info,
    /// The coalesced read-receipt events (SUBSCRIBE only).
    Receipts,
    /// Who is in the room (SUBSCRIBE only).
    Presence,
    /// Typing indicators: SEND to start or stop, SUBSCRIBE for the list.
    Typing,
    /// New content for a message (`x-relates-to`).
    Edit,
    /// Take back a message, edit or reaction (`x-relates-to`).
    Redact,
    /// React (`x-reaction`) to a message (`x-relates-to`).
    React,
    /// Make `x-user` a moderator or a member (`x-role`; the owner).
    Role,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "join" => Verb::Join,
            "leave" => Verb::Leave,
            "invite" => Verb::Invite,
            "kick" => Verb::Kick,
            "read" => Verb::Read,
            "history" => Verb::History,
            "info" => Verb::Info,
            "receipts" => Verb::Receipts,
            "presence" => Verb::Presence,
            "typing" => Verb::Typing,
            "edit" => Verb::Edit,
            "redact" => Verb::Redact,
            "react" => Verb::React,
            "role" => Verb::Role,
            _ => return None,
        })
    }

    /// The verb as written in destinations and replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Join => "join",
            Verb::Leave => "leave",
            Verb::Invite => "invite",
            Verb::Kick => "kick",
            Verb::Read => "read",
            Verb::History => "history",
            Verb::Info => "info",
            Verb::Receipts => "receipts",
            Verb::Presence => "presence",
            Verb::Typing => "typing",
            Verb::Edit => "edit",
            Verb::Redact => "redact",
            Verb::React => "react",
            Verb::Role => "role",
        }
    }
}

/// What a chat destination names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/room/{id}`: the timeline.
    Timeline(&'a str),
    /// `/room/{id}/{verb}`.
    Room(&'a str, Verb),
    /// `/rooms/create`.
    Create,
    /// `/rooms/list`.
    List,
}

/// Parses `destination` with the configured prefixes.
pub fn parse<'a>(
    destination: &'a str,
    room_prefix: &str,
    rooms_prefix: &str,
) -> Result<Target<'a>, String> {
    if let Some(rest) = destination.strip_prefix(room_prefix) {
        let (id, verb) = match rest.split_once('/') {
            Some((id, verb)) => (id, Some(verb)),
            None => (rest, None),
        };
        check_room_id(id)?;
        return match verb {
            None => Ok(Target::Timeline(id)),
            Some(v) => Verb::parse(v)
                .map(|verb| Target::Room(id, verb))
                .ok_or_else(|| format!("unknown room command {v:?}")),
        };
    }
    match destination.strip_prefix(rooms_prefix) {
        Some("create") => Ok(Target::Create),
        Some("list") => Ok(Target::List),
        _ => Err(format!("unknown chat destination {destination:?}")),
    }
}

/// The longest room id.
pub const MAX_ROOM_ID: usize = 512;

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '%' | '@' | '+')
}

/// Room ids: 1 to 512 of `A-Z a-z 0-9 . _ - ~ % @ +`.
pub fn check_room_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ROOM_ID || !id.chars().all(id_char) {
        return Err(format!(
            "invalid room id {id:?} (1 to {MAX_ROOM_ID} of A-Z a-z 0-9 . _ - ~ % @ +)"
        ));
    }
    Ok(())
}

/// A user name as it appears in a direct room id: bytes other than
/// `A-Z a-z 0-9 . _ - @` are written `%XX`, so `~` only separates.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The id of the direct room of two users: `dm~{a}~{b}` with the names in
/// byte order, so both users compute the same id.
pub fn direct_room_id(a: &str, b: &str) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("dm~{}~{}", escape_user(first), escape_user(second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_destinations() {
        let p = |d| parse(d, "/room/", "/rooms/");
        assert_eq!(p("/room/r1"), Ok(Target::Timeline("r1")));
        assert_eq!(p("/room/r1/join"), Ok(Target::Room("r1", Verb::Join)));
        assert_eq!(p("/rooms/create"), Ok(Target::Create));
        assert_eq!(p("/rooms/list"), Ok(Target::List));
        assert!(p("/room/r1/nope").is_err());
        assert!(p("/room/").is_err());
        assert!(p("/room/a b").is_err());
        assert!(p("/rooms/other").is_err());
    }

    #[test]
    fn direct_ids_are_symmetric_and_unambiguous() {
        assert_eq!(direct_room_id("bob", "alice"), "dm~alice~bob");
        assert_eq!(direct_room_id("alice", "bob"), "dm~alice~bob");
        assert_ne!(direct_room_id("a~b", "c"), direct_room_id("a", "b~c"));
        assert_eq!(direct_room_id("x/y", "z"), "dm~x%2Fy~z");
        check_room_id(&direct_room_id("é ü", "b")).expect("valid id");
    }
}
