//! STOMP over WebSocket. Text and binary messages feed the same decoder (a
//! frame may span messages; a message may hold several frames). Outbound,
//! each STOMP frame is one message: text unless configured binary or the
//! frame is not UTF-8. The HTTP handshake is in [`super::http`].

use super::{OutBuf, Transport};
use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::io;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// The subprotocols we speak, best first.
pub(crate) const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Picks the highest STOMP subprotocol the client offered in its
/// `Sec-WebSocket-Protocol` header(s).
pub(crate) fn choose_subprotocol<'a>(
    offered: impl Iterator<Item = &'a str>,
) -> Option<&'static str> {
    let offered: Vec<&str> = offered.flat_map(|h| h.split(',')).map(str::trim).collect();
    SUBPROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o.eq_ignore_ascii_case(p)))
}

/// A WebSocket connection carrying STOMP.
pub(crate) struct WsTransport<S> {
    ws: WebSocketStream<S>,
    binary: bool,
}

impl<S> WsTransport<S> {
    pub(crate) fn new(ws: WebSocketStream<S>, binary: bool) -> Self {
        WsTransport { ws, binary }
    }
}

/// Tungstenite errors as I/O errors; a message over the size limit becomes
/// [`io::ErrorKind::InvalidData`], which the session answers with an ERROR.
fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::Capacity(c) => io::Error::new(io::ErrorKind::InvalidData, c),
        other => io::Error::other(other),
    }
}

impl<S> Transport for WsTransport<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        loop {
            // `StreamExt::next` is cancel-safe.
            match self.ws.next().await {
                None => return Ok(0),
                Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(0),
                Some(Err(e)) => return Err(to_io(e)),
                Some(Ok(Message::Text(text))) if !text.is_empty() => {
                    buf.extend_from_slice(text.as_bytes());
                    return Ok(text.len());
                }
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    buf.extend_from_slice(&data);
                    return Ok(data.len());
                }
                Some(Ok(Message::Close(_))) => return Ok(0),
                // Pings are answered by tungstenite; empty messages carry
                // nothing.
                Some(Ok(_)) => continue,
            }
        }
    }

    async fn write(&mut self, out: &mut OutBuf) -> io::Result<()> {
        let mut start = 0;
        let mut bytes = std::mem::take(&mut out.bytes).freeze();
        for &end in &out.frame_ends {
            let frame = bytes.split_to(end - start);
            start = end;
            let message = if self.binary || std::str::from_utf8(&frame).is_err() {
                Message::Binary(frame)
            } else {
                match Utf8Bytes::try_from(frame.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::Binary(frame),
                }
            };
            self.ws.feed(message).await.map_err(to_io)?;
        }
        out.frame_ends.clear();
        self.ws.flush().await.map_err(to_io)
    }

    async fn close(&mut self) {
        let _ = self
            .ws
            .close(Some(CloseFrame {
                code: tungstenite::protocol::frame::coding::CloseCode::Normal,
                reason: Utf8Bytes::from_static(""),
            }))
            .await;
    }

    fn kind(&self) -> &'static str {
        "ws"
    }
}

#[cfg(test)]
mod tests {
    use super::choose_subprotocol;

    #[test]
    fn picks_the_highest_offered_subprotocol() {
        assert_eq!(
            choose_subprotocol(["v10.stomp, v12.stomp"].into_iter()),
            Some("v12.stomp")
        );
        assert_eq!(
            choose_subprotocol(["v11.stomp", "v10.stomp"].into_iter()),
            Some("v11.stomp")
        );
        assert_eq!(choose_subprotocol(["mqtt"].into_iter()), None);
        assert_eq!(choose_subprotocol(std::iter::empty()), None);
    }
}
