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
    /// ("room busy"). Unsubscribes are never refused: they wait.
    pub room_queue: usize,
    /// A room without subscribers stops its task after this many seconds
    /// and is reloaded from storage when used again.
    pub room_idle_secs: u64,
    /// How long read-receipt events are gathered before one coalesced
    /// event is published on `/room/{id}/receipts`, and unread counts are
    /// pushed to the members' inboxes (milliseconds).
    pub coalesce_ms: u64,
    /// How long a user stays in a room's presence list after their last
    /// timeline subscription ended (milliseconds), so a reconnect does
    /// not flicker.
    pub presence_grace_ms: u64,
    /// How long a typing indicator lasts unless renewed (milliseconds).
    pub typing_ttl_ms: u64,
    /// Posts (and edits, reactions, redactions) one user may send per
    /// second, sustained (0: no limit); more are refused softly with
    /// "rate limited".
    pub post_rate: u32,
    /// Posts one user may send at once before the rate applies.
    pub post_burst: u32,
    /// Typing SENDs one user may send per second (0: no limit).
    pub typing_rate: u32,
    /// Typing SENDs at once.
    pub typing_burst: u32,
    /// Read-marker SENDs one user may send per second (0: no limit).
    pub read_rate: u32,
    /// Read-marker SENDs at once.
    pub read_burst: u32,
    /// Error notices (`x-event:error` in the inbox) one user gets per
    /// second for SENDs refused before they reached a room (rate limited,
    /// not a member, bad header) that asked for no RECEIPT; more refusals
    /// are silent (0: no such notices).
    pub error_notice_rate: u32,
    /// Error notices at once.
    pub error_notice_burst: u32,
    /// Keep at most this many events per room; older ones are deleted
    /// (0: no limit).
    pub retention_max_events: u64,
    /// Delete events older than this (seconds; 0: keep forever).
    pub retention_max_age_secs: u64,
    /// Where the offline-member webhook POSTs (`http://host:port/path`;
    /// "" = no webhook): one small JSON document per stored message that
    /// members with no session did not see.
    pub webhook_url: String,
    /// Webhook notices waiting to be sent; more are dropped (and logged).
    pub webhook_queue: usize,
    /// How long one webhook POST may take (milliseconds).
    pub webhook_timeout_ms: u64,
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
            presence_grace_ms: 5000,
            typing_ttl_ms: 6000,
            post_rate: 10,
            post_burst: 30,
            typing_rate: 2,
            typing_burst: 5,
            read_rate: 10,
            read_burst: 30,
            error_notice_rate: 2,
            error_notice_burst: 10,
            retention_max_events: 0,
            retention_max_age_secs: 0,
            webhook_url: String::new(),
            webhook_queue: 1024,
            webhook_timeout_ms: 5000,
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
        if !self.webhook_url.is_empty() {
            crate::webhook::Endpoint::parse(&self.webhook_url)?;
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
