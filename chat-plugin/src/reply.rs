//! Answers to chat commands: to the `reply-to` the SEND named — a
//! `/user/...` destination of the sender, or the session's private reply
//! queue (a client's `/temp-queue/x` arrives rewritten to
//! `/reply-queue/...`) — else to the sender's inbox, with the SEND's
//! `correlation-id`.

use bytes::Bytes;
use bytestring::ByteString;
use stompede_codec::Headers;
use stompede_plugin::{Message, Services};

/// Where an answer is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every session of the user subscribed to `/user/{tail}`.
    User {
        /// The user-destination tail (`queue/chat`).
        tail: String,
    },
    /// One session's private reply queue (`/reply-queue/...`).
    Queue(ByteString),
}

/// Where a command's answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTo {
    /// The user who asked.
    pub user: String,
    /// Where the answer is delivered.
    pub target: Target,
    /// Copied from the SEND.
    pub correlation_id: Option<String>,
    /// Whether the SEND named `reply-to` or `correlation-id`: then every
    /// command is answered with a MESSAGE, not only queries and errors.
    pub explicit: bool,
}

impl ReplyTo {
    /// The reply target of a SEND by `user`: its `reply-to` must be a
    /// `/user/{tail}` destination (the sender's own sessions) or a reply
    /// queue (the broker's rewrite of `/temp-queue/{name}`); without one
    /// the inbox is used.
    pub fn from_send(user: &str, headers: &Headers, inbox: &str) -> Result<ReplyTo, String> {
        let target = match headers.get("reply-to") {
            None => Target::User {
                tail: inbox.to_owned(),
            },
            Some(to) => {
                if let Some(tail) = to.strip_prefix("/user/").filter(|t| !t.is_empty()) {
                    Target::User {
                        tail: tail.to_owned(),
                    }
                } else if to.len() > "/reply-queue/".len() && to.starts_with("/reply-queue/") {
                    Target::Queue(ByteString::from(to.to_owned()))
                } else {
                    return Err(format!(
                        "chat replies go to /user/... or /temp-queue/... destinations, not {to:?}"
                    ));
                }
            }
        };
        Ok(ReplyTo {
            user: user.to_owned(),
            target,
            correlation_id: headers.get("correlation-id").map(str::to_owned),
            explicit: headers.contains("reply-to") || headers.contains("correlation-id"),
        })
    }

    /// The `destination` of answer MESSAGEs.
    pub fn destination(&self) -> ByteString {
        match &self.target {
            Target::User { tail } => ByteString::from(format!("/user/{tail}")),
            Target::Queue(queue) => queue.clone(),
        }
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
        self.deliver(services, Message::new(self.destination(), headers, body));
    }

    /// Sends `message` (a history event, which keeps its `message-id`)
    /// with the correlation id added.
    pub fn forward(&self, services: &dyn Services, mut message: Message) {
        if let Some(id) = &self.correlation_id {
            message.headers.push("correlation-id", id.clone());
        }
        self.deliver(services, message.with_destination(self.destination()));
    }

    fn deliver(&self, services: &dyn Services, message: Message) {
        match &self.target {
            Target::User { tail } => services.deliver_to_user(&self.user, tail, message, true),
            Target::Queue(_) => {
                if let Err(e) = services.publish(message, true) {
                    tracing::debug!(user = %self.user, error = %e, "chat reply not delivered");
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().copied().collect()
    }

    #[test]
    fn reply_targets() {
        let inbox = ReplyTo::from_send("a", &h(&[]), "queue/chat").expect("inbox");
        assert_eq!(&*inbox.destination(), "/user/queue/chat");
        assert!(!inbox.explicit);
        let user = ReplyTo::from_send("a", &h(&[("reply-to", "/user/queue/h")]), "queue/chat")
            .expect("user");
        assert_eq!(&*user.destination(), "/user/queue/h");
        let queue = ReplyTo::from_send(
            "a",
            &h(&[("reply-to", "/reply-queue/s1.x"), ("correlation-id", "c")]),
            "queue/chat",
        )
        .expect("queue");
        assert_eq!(queue.target, Target::Queue("/reply-queue/s1.x".into()));
        assert_eq!(queue.correlation_id.as_deref(), Some("c"));
        for bad in ["/topic/x", "/user/", "/reply-queue/", "/queue/q"] {
            assert!(ReplyTo::from_send("a", &h(&[("reply-to", bad)]), "queue/chat").is_err());
        }
    }
}
