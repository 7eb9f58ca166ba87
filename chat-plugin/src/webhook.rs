//! The optional outgoing webhook for offline members: an HTTP/1.1 POST of
//! a small JSON document per message, from one task with a bounded queue
//! (notices beyond it are dropped and logged) and a timeout per request.
//! Plain `http://` only; put a local relay in front for anything else.

use crate::offline::{OfflineHook, OfflineMessage};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Where the webhook posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` to connect to.
    pub authority: String,
    /// The request path (with query).
    pub path: String,
}

impl Endpoint {
    /// Parses `http://host[:port][/path]`.
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("chat.webhook_url must start with http://, not {url:?}"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty()
            || authority.contains(['@', ' '])
            || path.contains([' ', '\r', '\n'])
        {
            return Err(format!(
                "chat.webhook_url is not a usable http URL: {url:?}"
            ));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Endpoint {
            authority,
            path: path.to_owned(),
        })
    }
}

/// The webhook: queues notices for its task.
#[derive(Debug)]
pub struct Webhook {
    tx: mpsc::Sender<Vec<u8>>,
}

impl Webhook {
    /// Starts the webhook's task (on the current Tokio runtime).
    pub fn start(url: &str, queue: usize, timeout: Duration) -> Result<Webhook, String> {
        let endpoint = Endpoint::parse(url)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| "the chat webhook needs a Tokio runtime".to_owned())?;
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(queue.max(1));
        runtime.spawn(async move {
            while let Some(body) = rx.recv().await {
                match tokio::time::timeout(timeout, post(&endpoint, &body)).await {
                    Ok(Ok(status)) if (200..300).contains(&status) => {}
                    Ok(Ok(status)) => tracing::warn!(status, "chat webhook refused a notice"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "chat webhook failed"),
                    Err(_) => tracing::warn!("chat webhook timed out"),
                }
            }
        });
        Ok(Webhook { tx })
    }
}

/// The JSON document posted for a message (no body: the receiver fetches
/// what it needs, so message content does not leave the broker).
pub fn document(message: &OfflineMessage) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event": "offline-message",
        "room": message.room,
        "room_name": message.room_name,
        "seq": message.seq,
        "sender": message.sender,
        "timestamp": message.timestamp,
        "users": message.users,
    }))
    .unwrap_or_default()
}

impl OfflineHook for Webhook {
    fn offline_message(&self, message: &OfflineMessage) {
        if self.tx.try_send(document(message)).is_err() {
            tracing::warn!(room = %message.room, seq = message.seq, "chat webhook queue full; notice dropped");
        }
    }
}

/// One POST; the response's status code.
async fn post(endpoint: &Endpoint, body: &[u8]) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(&endpoint.authority).await?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: stompede-chat\r\n\r\n",
        endpoint.path,
        endpoint.authority,
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await?;
    // The status line is all we read (bounded).
    let mut buf = [0u8; 256];
    let mut got = 0;
    while got < buf.len() {
        let n = stream.read(&mut buf[got..]).await?;
        if n == 0 {
            break;
        }
        got += n;
        if buf[..got].contains(&b'\n') {
            break;
        }
    }
    let line = std::str::from_utf8(&buf[..got]).unwrap_or("");
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP status line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://push.local:8080/hooks/chat?k=1").expect("url");
        assert_eq!(e.authority, "push.local:8080");
        assert_eq!(e.path, "/hooks/chat?k=1");
        let e = Endpoint::parse("http://push.local").expect("url");
        assert_eq!(
            (e.authority.as_str(), e.path.as_str()),
            ("push.local:80", "/")
        );
        assert!(Endpoint::parse("https://x/").is_err());
        assert!(Endpoint::parse("http:///x").is_err());
        assert!(Endpoint::parse("http://x/a b").is_err());
    }
}
