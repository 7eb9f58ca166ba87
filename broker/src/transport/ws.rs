//! STOMP over WebSocket. Text and binary messages feed the same decoder (a
//! frame may span messages; a message may hold several frames). Outbound,
//! each STOMP frame is one message: text unless configured binary or the
//! frame is not UTF-8.

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

fn to_io(e: tungstenite::Error) -> io::Error {
    match e {
        tungstenite::Error::Io(e) => e,
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

/// Bytes the WebSocket layer reads from the socket at a time. Small, so
/// that idle connections stay cheap; busy ones still read many frames per
/// call.
const WS_READ_BUFFER: usize = 4 * 1024;

/// Outbound bytes gathered before a socket write (a flush always writes).
const WS_WRITE_BUFFER: usize = 64 * 1024;

/// Runs the WebSocket handshake: checks the path, negotiates the STOMP
/// subprotocol, and applies the message size limit.
pub(crate) async fn accept(
    shared: &crate::broker::Shared,
    stream: tokio::net::TcpStream,
) -> Result<WsTransport<tokio::net::TcpStream>, tungstenite::Error> {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

    let config = &shared.config;
    let path = config.listeners.websocket_path.clone();
    let require_subprotocol = config.websocket.require_subprotocol;
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = move |request: &Request, mut response: Response| {
        let refuse = |status: StatusCode, why: &str| -> ErrorResponse {
            let mut r = ErrorResponse::new(Some(why.to_owned()));
            *r.status_mut() = status;
            r
        };
        if request.uri().path() != path {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                "no WebSocket endpoint at this path",
            ));
        }
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok());
        match choose_subprotocol(offered) {
            Some(chosen) => {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static(chosen));
            }
            None if require_subprotocol => {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "offer one of the subprotocols v12.stomp, v11.stomp, v10.stomp",
                ));
            }
            None => {}
        }
        Ok(response)
    };
    let ws_config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_message_size(Some(config.websocket.max_message_bytes))
        .max_frame_size(Some(config.websocket.max_message_bytes));
    let ws =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config)).await?;
    Ok(WsTransport::new(ws, config.websocket.binary_frames))
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
