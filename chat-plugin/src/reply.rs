//! Answers to chat commands: to the `reply-to` the SEND named (a
//! `/user/...` destination of the sender), else to the sender's inbox,
//! with the SEND's `correlation-id`.

use bytes::Bytes;
use bytestring::ByteString;
use stompede_codec::Headers;
use stompede_plugin::{Message, Services};

/// Where a command's answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The user whose sessions receive it.
    pub user: String,
    /// The user-destination tail (`queue/chat`).
    pub tail: String,
    /// Copied from the SEND.
    pub correlation_id: Option<String>,
    /// Whether the SEND named `reply-to` or `correlation-id`: then every
    /// command is answered with a MESSAGE, not only queries and errors.
    pub explicit: bool,
}

impl ReplyTo {
    /// The reply target of a SEND by `user`: its `reply-to` must be a
    /// `/user/{tail}` destination (the sender's own sessions), else the
    /// inbox is used.
    pub fn from_send(user: &str, headers: &Headers, inbox: &str) -> Result<ReplyTo, String> {
        let tail = match headers.get("reply-to") {
            None => inbox.to_owned(),
            Some(to) => match to.strip_prefix("/user/") {
                Some(tail) if !tail.is_empty() => tail.to_owned(),
                _ => {
                    return Err(format!(
                        "chat replies go to /user/... destinations, not {to:?}"
                    ))
                }
            },
        };
        Ok(ReplyTo {
            user: user.to_owned(),
            tail,
            correlation_id: headers.get("correlation-id").map(str::to_owned),
            explicit: headers.contains("reply-to") || headers.contains("correlation-id"),
        })
    }

    /// Sends an answer: `headers` plus `x-event`, `x-command` and the
    /// correlation id.
    pub fn send(
        &self,
        services: &dyn Services,
        event: &str,
        command: &str,
        mut headers: Headers,
        body: Bytes,
    ) {
        headers.push("x-event", event.to_owned());
        headers.push("x-command", command.to_owned());
        if let Some(id) = &self.correlation_id {
            headers.push("correlation-id", id.clone());
        }
        self.send_message(services, headers, body);
    }

    /// Sends a new message with `headers` and `body`.
    pub fn send_message(&self, services: &dyn Services, headers: Headers, body: Bytes) {
        let destination = ByteString::from(format!("/user/{}", self.tail));
        services.deliver_to_user(
            &self.user,
            &self.tail,
            Message::new(destination, headers, body),
            true,
        );
    }

    /// Sends `message` (a history event, which keeps its `message-id`)
    /// with the correlation id added.
    pub fn forward(&self, services: &dyn Services, mut message: Message) {
        if let Some(id) = &self.correlation_id {
            message.headers.push("correlation-id", id.clone());
        }
        services.deliver_to_user(&self.user, &self.tail, message, true);
    }

    /// Sends an error answer.
    pub fn error(&self, services: &dyn Services, command: &str, error: &str) {
        let mut headers = Headers::new();
        headers.push("x-error", error.to_owned());
        self.send(services, "error", command, headers, Bytes::new());
    }
}

/// Notifies a user's inbox (not a reply: no correlation id).
pub fn notify(services: &dyn Services, user: &str, inbox: &str, headers: Headers, body: Bytes) {
    let destination = ByteString::from(format!("/user/{inbox}"));
    services.deliver_to_user(user, inbox, Message::new(destination, headers, body), true);
}
