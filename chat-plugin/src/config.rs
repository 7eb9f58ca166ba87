//! The plugin's configuration: the broker embeds it as its `[chat]`
//! section.

use serde::Deserialize;

/// How the chat plugin behaves. Every field has a default, so an empty
/// `[chat]` section is a working configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Whether the `stompede` binary installs the chat plugin. (Embedders
    /// add `ChatPlugin` themselves.)
    pub enabled: bool,
    /// The prefix of room destinations (`/room/{id}`, `/room/{id}/join` …).
    pub room_prefix: String,
    /// The prefix of room-independent commands (`/rooms/create`,
    /// `/rooms/list`).
    pub rooms_prefix: String,
    /// The user-destination tail of the inbox: replies, unread counts and
    /// membership notices go to `/user/{inbox}` (default `queue/chat`).
    pub inbox: String,
    /// The most timeline events one SUBSCRIBE replays. A resume that would
    /// need more ends with `x-recovered:false` (and no partial replay).
    pub max_replay: usize,
    /// The largest `x-limit` a history page may ask for.
    pub max_history_page: usize,
    /// The `x-limit` of a history page that names none.
    pub default_history_page: usize,
    /// The largest page of `/rooms/list`.
    pub max_rooms_page: usize,
    /// How many commands a room's queue holds before new ones are refused
    /// ("room busy").
    pub room_queue: usize,
    /// A room without subscribers stops its task after this many seconds
    /// and is reloaded from storage when used again.
    pub room_idle_secs: u64,
    /// How long read-receipt events are gathered before one coalesced
    /// event is published on `/room/{id}/receipts`, and unread counts are
    /// pushed to the members' inboxes (milliseconds).
    pub coalesce_ms: u64,
    /// How long after a SUBSCRIBE to the inbox the unread snapshot is sent
    /// (milliseconds; the broker attaches the subscription after its hook
    /// returns).
    pub inbox_snapshot_delay_ms: u64,
    /// Refusals about chat rules (not a member, busy) end the connection
    /// with an ERROR instead of a RECEIPT with `x-error` / a denied
    /// MESSAGE.
    pub strict: bool,
    /// The longest accepted room name, user header value or client message
    /// id (bytes).
    pub max_text: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            enabled: true,
            room_prefix: "/room/".into(),
            rooms_prefix: "/rooms/".into(),
            inbox: "queue/chat".into(),
            max_replay: 10_000,
            max_history_page: 500,
            default_history_page: 50,
            max_rooms_page: 200,
            room_queue: 4096,
            room_idle_secs: 300,
            coalesce_ms: 200,
            inbox_snapshot_delay_ms: 50,
            strict: false,
            max_text: 256,
        }
    }
}

impl ChatConfig {
    /// Checks the values that must make sense together.
    pub fn validate(&self) -> Result<(), String> {
        for (name, prefix) in [
            ("room_prefix", &self.room_prefix),
            ("rooms_prefix", &self.rooms_prefix),
        ] {
            if !prefix.starts_with('/') || !prefix.ends_with('/') || prefix.len() < 3 {
                return Err(format!(
                    "chat.{name} must start and end with '/': {prefix:?}"
                ));
            }
        }
        if self.room_prefix.starts_with(&self.rooms_prefix)
            || self.rooms_prefix.starts_with(&self.room_prefix)
        {
            return Err("chat.room_prefix and chat.rooms_prefix overlap".into());
        }
        if self.inbox.is_empty() || self.inbox.starts_with('/') {
            return Err("chat.inbox is a user-destination tail such as \"queue/chat\"".into());
        }
        if self.max_replay == 0 || self.max_history_page == 0 || self.room_queue == 0 {
            return Err("chat.max_replay, max_history_page and room_queue must be > 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_unknown_fields_are_refused() {
        ChatConfig::default().validate().expect("valid defaults");
        let parsed: ChatConfig = serde_json::from_str(r#"{"max_replay": 5}"#).expect("parse");
        assert_eq!(parsed.max_replay, 5);
        assert_eq!(parsed.room_prefix, "/room/");
        assert!(serde_json::from_str::<ChatConfig>(r#"{"nope": 1}"#).is_err());
        let overlapping = ChatConfig {
            rooms_prefix: "/room/x/".into(),
            ..ChatConfig::default()
        };
        assert!(overlapping.validate().is_err());
    }
}
