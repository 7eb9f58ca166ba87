//! Timeline MESSAGEs: server-stamped headers on stored events, and which
//! client headers a post keeps.

use crate::record::Event;
use bytestring::ByteString;
use std::sync::Arc;
use stompede_codec::Headers;
use stompede_plugin::{Message, RESERVED_SEND_HEADERS};

/// Headers the server stamps on chat MESSAGEs; client copies are removed
/// from a SEND.
pub const STAMPED: &[&str] = &[
    "x-seq",
    "x-prev-seq",
    "x-epoch",
    "x-sender",
    "x-timestamp",
    "x-event",
    "x-target",
    "x-client-msg-id",
    "x-relates-to",
    "x-redacted-by",
    "x-reaction",
    "x-role",
    "x-replay",
    "x-recovered",
    "x-room",
    "x-history",
    "x-error",
];

/// Headers that steer a SEND and are not stored with the post.
const CONTROL: &[&str] = &["reply-to", "correlation-id"];

/// The client headers a post keeps: everything but the broker's reserved
/// headers, the chat's stamped headers and the control headers.
pub fn kept_headers(send: &Headers) -> Vec<(String, String)> {
    send.iter()
        .filter(|(name, _)| {
            !RESERVED_SEND_HEADERS.contains(name)
                && !STAMPED.contains(name)
                && !CONTROL.contains(name)
        })
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The MESSAGE of a stored event, as delivered on `/room/{room}`.
pub fn message(
    destination: &ByteString,
    room: &str,
    epoch: &str,
    event: &Event,
    flag: Option<(&'static str, &'static str)>,
) -> Message {
    let mut headers = Headers::with_capacity(10 + event.headers.len());
    headers.push("x-seq", event.seq.to_string());
    headers.push("x-prev-seq", event.seq.saturating_sub(1).to_string());
    headers.push("x-epoch", epoch.to_owned());
    headers.push("x-sender", event.sender.clone());
    headers.push("x-timestamp", event.ts.to_string());
    headers.push("x-event", event.kind.as_str());
    if let Some(target) = &event.target {
        headers.push("x-target", target.clone());
    }
    if let Some(id) = &event.client_msg_id {
        headers.push("x-client-msg-id", id.clone());
    }
    if let Some(seq) = event.relates_to {
        headers.push("x-relates-to", seq.to_string());
    }
    if let Some(seq) = event.redacted_by {
        headers.push("x-redacted-by", seq.to_string());
    }
    if let Some((name, value)) = flag {
        headers.push(name, value);
    }
    for (name, value) in &event.headers {
        headers.push(name.clone(), value.clone());
    }
    Message::restored(
        destination.clone(),
        ByteString::from(format!("{room}:{}", event.seq)),
        headers,
        event.body.clone(),
    )
}

/// The shared live MESSAGE of an event.
pub fn live(destination: &ByteString, room: &str, epoch: &str, event: &Event) -> Arc<Message> {
    Arc::new(message(destination, room, epoch, event, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EventKind;
    use bytes::Bytes;

    #[test]
    fn client_copies_of_stamped_headers_are_dropped() {
        let send: Headers = [
            ("destination", "/room/r"),
            ("receipt", "1"),
            ("x-seq", "999"),
            ("x-sender", "mallory"),
            ("content-type", "text/plain"),
            ("x-custom", "kept"),
            ("reply-to", "/user/queue/x"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            kept_headers(&send),
            vec![
                ("content-type".to_owned(), "text/plain".to_owned()),
                ("x-custom".to_owned(), "kept".to_owned())
            ]
        );
    }

    #[test]
    fn messages_carry_the_stamped_headers() {
        let event = Event {
            seq: 5,
            ts: 42,
            kind: EventKind::Message,
            sender: "alice".into(),
            target: None,
            client_msg_id: Some("c".into()),
            msg_index: 1,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(b"hi"),
            relates_to: None,
            redacted_by: None,
        };
        let m = message(
            &ByteString::from_static("/room/r"),
            "r",
            "ep",
            &event,
            Some(("x-replay", "true")),
        );
        assert_eq!(&*m.message_id, "r:5");
        let h = |n| m.headers.get(n);
        assert_eq!(
            (h("x-seq"), h("x-prev-seq"), h("x-epoch"), h("x-sender")),
            (Some("5"), Some("4"), Some("ep"), Some("alice"))
        );
        assert_eq!(
            (h("x-event"), h("x-replay")),
            (Some("message"), Some("true"))
        );
        assert_eq!(h("content-type"), Some("text/plain"));
    }
}
