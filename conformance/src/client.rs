//! A deliberately dumb STOMP client: it writes whatever raw bytes a case
//! gives it (over TCP or WebSocket) and decodes what the server sends with
//! the project's codec, so the suite checks the wire, not a client library.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt as _, StreamExt as _};
use stompede_codec::{Command, Frame, Item, StompCodec, Version};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// WebSocket subprotocols offered by the suite, best first.
pub const WS_SUBPROTOCOLS: &str = "v12.stomp, v11.stomp, v10.stomp";

/// Where a broker listens, parsed from a `tcp://` or `ws://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Plain STOMP over TCP at `host:port`.
    Tcp {
        /// `host:port` to connect to.
        addr: String,
    },
    /// STOMP over WebSocket (one STOMP frame per text message).
    Ws {
        /// `host:port` to open the TCP connection to.
        addr: String,
        /// The full `ws://` URL used for the HTTP upgrade.
        url: String,
    },
}

impl Endpoint {
    /// Parses `tcp://host:port` or `ws://host:port/path` (`wss` is not
    /// supported: the suite carries no TLS stack).
    pub fn parse(url: &str) -> Result<Endpoint> {
        if let Some(rest) = url.strip_prefix("tcp://") {
            let addr = rest.trim_end_matches('/');
            if addr.is_empty() {
                bail!("missing host:port in {url:?}");
            }
            Ok(Endpoint::Tcp {
                addr: with_default_port(addr, 61613),
            })
        } else if let Some(rest) = url.strip_prefix("ws://") {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                bail!("missing host:port in {url:?}");
            }
            Ok(Endpoint::Ws {
                addr: with_default_port(authority, 80),
                url: url.to_owned(),
            })
        } else if url.starts_with("wss://") {
            bail!("wss:// is not supported (no TLS in the suite); use ws://")
        } else {
            bail!("unsupported URL {url:?}: expected tcp://host:port or ws://host:port/path")
        }
    }

    /// The host part of the URL (without the port), used as the default
    /// `host` header of CONNECT.
    pub fn host(&self) -> &str {
        let addr = match self {
            Endpoint::Tcp { addr } | Endpoint::Ws { addr, .. } => addr,
        };
        if let Some(rest) = addr.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h)
    }

    /// Whether this is a WebSocket endpoint.
    pub fn is_ws(&self) -> bool {
        matches!(self, Endpoint::Ws { .. })
    }
}

fn with_default_port(authority: &str, port: u16) -> String {
    let has_port = if authority.starts_with('[') {
        authority.contains("]:")
    } else {
        authority.contains(':')
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{port}")
    }
}

enum Transport {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// What one read from the server produced.
#[derive(Debug)]
pub enum Event {
    /// A complete frame.
    Frame(Frame),
    /// A heart-beat (EOLs between frames).
    HeartBeat,
    /// The server closed the connection (or reset it).
    Closed,
    /// Nothing arrived before the deadline.
    Timeout,
}

/// One connection to the broker under test.
pub struct Conn {
    transport: Transport,
    codec: StompCodec,
    buf: BytesMut,
    closed: bool,
    pending: VecDeque<Frame>,
    next_receipt: u64,
    trace: bool,
    close_reason: Option<String>,
    /// How long a single expectation waits by default.
    pub timeout: Duration,
    /// The version negotiated by CONNECT (1.0 until then).
    pub version: Version,
}

impl Conn {
    /// Opens the transport (TCP connection or WebSocket upgrade) without
    /// sending any STOMP frame.
    pub async fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Conn> {
        let deadline = Instant::now() + timeout;
        let transport = match endpoint {
            Endpoint::Tcp { addr } => {
                let tcp = timeout_at(deadline, TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| anyhow!("timed out connecting to {addr}"))?
                    .with_context(|| format!("connecting to {addr}"))?;
                tcp.set_nodelay(true).ok();
                Transport::Tcp(tcp)
            }
            Endpoint::Ws { addr, url } => {
                let tcp = timeout_at(deadline, TcpStream::connect(addr.as_str()))
                    .await
                    .map_err(|_| anyhow!("timed out connecting to {addr}"))?
                    .with_context(|| format!("connecting to {addr}"))?;
                tcp.set_nodelay(true).ok();
                let mut request = url
                    .as_str()
                    .into_client_request()
                    .with_context(|| format!("bad WebSocket URL {url}"))?;
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static(WS_SUBPROTOCOLS),
                );
                let (ws, _response) =
                    timeout_at(deadline, tokio_tungstenite::client_async(request, tcp))
                        .await
                        .map_err(|_| anyhow!("timed out in the WebSocket handshake"))?
                        .with_context(|| format!("WebSocket handshake with {url}"))?;
                Transport::Ws(Box::new(ws))
            }
        };
        Ok(Conn {
            transport,
            codec: StompCodec::default(),
            buf: BytesMut::with_capacity(8 * 1024),
            closed: false,
            pending: VecDeque::new(),
            next_receipt: 0,
            trace: std::env::var_os("STOMP_CONFORMANCE_TRACE").is_some(),
            close_reason: None,
            timeout,
            version: Version::V1_0,
        })
    }

    /// Whether this connection runs over WebSocket.
    pub fn is_ws(&self) -> bool {
        matches!(self.transport, Transport::Ws(_))
    }

    /// Sets the version used to decode server frames (header unescaping).
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
        self.codec.set_version(version);
    }

    /// Writes `raw` in one piece: one TCP write, or one WebSocket message.
    pub async fn send(&mut self, raw: impl AsRef<[u8]>) -> Result<()> {
        let raw = raw.as_ref();
        if self.trace {
            eprintln!(">> {:?}", String::from_utf8_lossy(raw));
        }
        let deadline = Instant::now() + self.timeout;
        match &mut self.transport {
            Transport::Tcp(tcp) => {
                timeout_at(deadline, async {
                    tcp.write_all(raw).await?;
                    tcp.flush().await
                })
                .await
                .map_err(|_| anyhow!("timed out writing to the server"))?
                .context("writing to the server")?;
            }
            Transport::Ws(ws) => {
                let msg = ws_message(raw);
                timeout_at(deadline, ws.send(msg))
                    .await
                    .map_err(|_| anyhow!("timed out writing to the server"))?
                    .context("writing to the server")?;
            }
        }
        Ok(())
    }

    /// Writes each part separately (one TCP write with a short pause after
    /// it, or one WebSocket message per part).
    pub async fn send_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        for part in parts {
            self.send(part).await?;
            if !self.is_ws() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Writes `raw` one byte at a time, flushing after each byte (over
    /// WebSocket: one message per byte, or per character where a byte
    /// alone would not be valid UTF-8).
    pub async fn send_bytewise(&mut self, raw: impl AsRef<[u8]>) -> Result<()> {
        let raw = raw.as_ref();
        match std::str::from_utf8(raw) {
            Ok(text) if self.is_ws() => {
                let mut tmp = [0u8; 4];
                for ch in text.chars() {
                    self.send(ch.encode_utf8(&mut tmp).as_bytes()).await?;
                }
            }
            _ => {
                for byte in raw {
                    self.send([*byte]).await?;
                }
            }
        }
        Ok(())
    }

    /// Waits for the next event until `deadline`.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<Event> {
        loop {
            match tokio_util::codec::Decoder::decode(&mut self.codec, &mut self.buf) {
                Ok(Some(Item::Frame(frame))) => return Ok(Event::Frame(frame)),
                Ok(Some(Item::HeartBeat)) => return Ok(Event::HeartBeat),
                Ok(None) => {}
                Err(e) => bail!("the server sent bytes that do not decode as STOMP: {e}"),
            }
            if self.closed {
                return Ok(Event::Closed);
            }
            let read = match &mut self.transport {
                Transport::Tcp(tcp) => {
                    match timeout_at(deadline, tcp.read_buf(&mut self.buf)).await {
                        Err(_) => return Ok(Event::Timeout),
                        Ok(Ok(0)) => false,
                        Ok(Err(e)) => {
                            self.close_reason = Some(format!("TCP error: {e}"));
                            false
                        }
                        Ok(Ok(n)) => {
                            if self.trace {
                                let start = self.buf.len().saturating_sub(n);
                                eprintln!("<< {:?}", String::from_utf8_lossy(&self.buf[start..]));
                            }
                            true
                        }
                    }
                }
                Transport::Ws(ws) => match timeout_at(deadline, ws.next()).await {
                    Err(_) => return Ok(Event::Timeout),
                    Ok(None) => false,
                    Ok(Some(Err(e))) => {
                        self.close_reason = Some(format!("WebSocket error: {e}"));
                        if self.trace {
                            eprintln!("<< (WebSocket error: {e})");
                        }
                        false
                    }
                    Ok(Some(Ok(Message::Close(close)))) => {
                        if let Some(c) = &close {
                            self.close_reason = Some(format!(
                                "WebSocket close {} {:?}",
                                c.code,
                                c.reason.as_str()
                            ));
                        }
                        if self.trace {
                            eprintln!("<< (WebSocket close: {close:?})");
                        }
                        false
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        if self.trace {
                            eprintln!("<< {:?}", text.as_str());
                        }
                        self.buf.extend_from_slice(text.as_bytes());
                        true
                    }
                    Ok(Some(Ok(Message::Binary(data)))) => {
                        self.buf.extend_from_slice(&data);
                        true
                    }
                    Ok(Some(Ok(_))) => true,
                },
            };
            if !read {
                if self.trace {
                    eprintln!("<< (closed)");
                }
                self.closed = true;
            }
        }
    }

    /// ` (reason)` if the transport said why it closed, else nothing.
    fn why_closed(&self) -> String {
        self.close_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    }

    /// The next frame (heart-beats are skipped) within the default timeout.
    pub async fn recv(&mut self) -> Result<Frame> {
        self.recv_within(self.timeout).await
    }

    /// The next frame (heart-beats are skipped) within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Frame> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        let deadline = Instant::now() + wait;
        loop {
            match self.next_event(deadline).await? {
                Event::Frame(frame) => return Ok(frame),
                Event::HeartBeat => {}
                Event::Closed => {
                    bail!(
                        "the server closed the connection{} while a frame was expected",
                        self.why_closed()
                    )
                }
                Event::Timeout => bail!("no frame from the server within {} ms", wait.as_millis()),
            }
        }
    }

    /// The next frame, which must have command `command`. An unexpected
    /// ERROR is reported with its `message` header.
    pub async fn expect(&mut self, command: Command) -> Result<Frame> {
        let frame = self
            .recv()
            .await
            .with_context(|| format!("waiting for {command}"))?;
        if frame.command != command {
            bail!("expected {command}, got {}", describe(&frame));
        }
        Ok(frame)
    }

    /// Expects a RECEIPT whose `receipt-id` is `id`.
    pub async fn expect_receipt(&mut self, id: &str) -> Result<Frame> {
        let frame = self
            .expect(Command::Receipt)
            .await
            .with_context(|| format!("waiting for the RECEIPT of {id:?}"))?;
        match frame.get("receipt-id") {
            Some(got) if got == id => Ok(frame),
            other => bail!("RECEIPT has receipt-id {other:?}, expected {id:?}"),
        }
    }

    /// Expects a MESSAGE frame.
    pub async fn expect_message(&mut self) -> Result<Frame> {
        self.expect(Command::Message).await
    }

    /// Collects `n` MESSAGE frames.
    pub async fn expect_messages(&mut self, n: usize) -> Result<Vec<Frame>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let frame = self
                .expect_message()
                .await
                .with_context(|| format!("after {i} of {n} expected messages"))?;
            out.push(frame);
        }
        Ok(out)
    }

    /// Expects an ERROR frame.
    pub async fn expect_error(&mut self) -> Result<Frame> {
        let frame = self.recv().await.context("waiting for ERROR")?;
        if frame.command != Command::Error {
            bail!("expected ERROR, got {}", describe(&frame));
        }
        Ok(frame)
    }

    /// Expects that no frame arrives within `wait` (heart-beats are fine).
    pub async fn expect_silence(&mut self, wait: Duration) -> Result<()> {
        if let Some(frame) = self.pending.pop_front() {
            bail!("expected no frame, got {}", describe(&frame));
        }
        let deadline = Instant::now() + wait;
        loop {
            match self.next_event(deadline).await? {
                Event::Frame(frame) => bail!(
                    "expected no frame for {} ms, got {}",
                    wait.as_millis(),
                    describe(&frame)
                ),
                Event::HeartBeat => {}
                Event::Closed => bail!(
                    "the server closed the connection{} unexpectedly",
                    self.why_closed()
                ),
                Event::Timeout => return Ok(()),
            }
        }
    }

    /// Expects the server to close the connection within the default
    /// timeout. Frames and heart-beats that arrive first are ignored.
    pub async fn expect_close(&mut self) -> Result<()> {
        self.expect_close_within(self.timeout).await
    }

    /// Expects the server to close the connection within `wait`.
    pub async fn expect_close_within(&mut self, wait: Duration) -> Result<()> {
        self.pending.clear();
        let deadline = Instant::now() + wait;
        loop {
            match self.next_event(deadline).await? {
                Event::Closed => return Ok(()),
                Event::Frame(_) | Event::HeartBeat => {}
                Event::Timeout => bail!(
                    "the server did not close the connection within {} ms",
                    wait.as_millis()
                ),
            }
        }
    }

    /// Expects an ERROR frame and then the connection to close.
    pub async fn expect_error_and_close(&mut self) -> Result<Frame> {
        let error = self.expect_error().await?;
        self.expect_close()
            .await
            .context("after sending ERROR the server must close the connection")?;
        Ok(error)
    }

    /// Sends a frame built by [`frame`].
    pub async fn send_frame(
        &mut self,
        command: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.send(frame(command, headers, body)).await
    }

    /// Sends a frame with an extra `receipt` header and waits for its
    /// RECEIPT. Frames that arrive meanwhile (MESSAGEs, say) are kept for
    /// the next [`Conn::recv`]; an ERROR fails.
    pub async fn request(
        &mut self,
        command: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.next_receipt += 1;
        let id = format!("rcpt-{}", self.next_receipt);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("receipt", &id));
        self.send(frame(command, &all, body)).await?;
        self.await_receipt(&id)
            .await
            .with_context(|| format!("{command} with receipt {id:?}"))
    }

    /// Waits for the RECEIPT `id`, keeping other non-ERROR frames for later.
    pub async fn await_receipt(&mut self, id: &str) -> Result<()> {
        if let Some(pos) = self
            .pending
            .iter()
            .position(|f| f.command == Command::Receipt && f.get("receipt-id") == Some(id))
        {
            self.pending.remove(pos);
            return Ok(());
        }
        let deadline = Instant::now() + self.timeout;
        let mut stash = Vec::new();
        let result = loop {
            match self.next_event(deadline).await? {
                Event::Frame(f)
                    if f.command == Command::Receipt && f.get("receipt-id") == Some(id) =>
                {
                    break Ok(());
                }
                Event::Frame(f) if f.command == Command::Error => {
                    break Err(anyhow!("got {} instead of the RECEIPT", describe(&f)));
                }
                Event::Frame(f) => stash.push(f),
                Event::HeartBeat => {}
                Event::Closed => {
                    break Err(anyhow!(
                        "the server closed the connection{}",
                        self.why_closed()
                    ))
                }
                Event::Timeout => {
                    break Err(anyhow!("no RECEIPT within {} ms", self.timeout.as_millis()))
                }
            }
        };
        self.pending.extend(stash);
        result
    }

    /// Subscribes with `SUBSCRIBE destination id ack` and waits for the
    /// RECEIPT, so the subscription is live when this returns.
    pub async fn subscribe(&mut self, destination: &str, id: &str, ack: &str) -> Result<()> {
        self.request(
            "SUBSCRIBE",
            &[("destination", destination), ("id", id), ("ack", ack)],
            "",
        )
        .await
    }

    /// Sends a text message to `destination` and waits for its RECEIPT.
    pub async fn publish(&mut self, destination: &str, body: &str) -> Result<()> {
        self.request("SEND", &[("destination", destination)], body)
            .await
    }

    /// The headers that acknowledge `message` in this connection's version:
    /// `id` (= the MESSAGE's `ack`) in 1.2, `message-id` + `subscription`
    /// in 1.1, `message-id` in 1.0.
    pub fn ack_headers(&self, message: &Frame) -> Result<Vec<(&'static str, String)>> {
        let get = |name: &str| {
            message
                .get(name)
                .map(str::to_owned)
                .ok_or_else(|| anyhow!("MESSAGE has no {name} header: {}", describe(message)))
        };
        Ok(match self.version {
            Version::V1_2 => vec![("id", get("ack")?)],
            Version::V1_1 => vec![
                ("message-id", get("message-id")?),
                ("subscription", get("subscription")?),
            ],
            Version::V1_0 => vec![("message-id", get("message-id")?)],
        })
    }

    /// ACKs (or NACKs, with `command = "NACK"`) `message` with receipt,
    /// adding `extra` headers (a `transaction`, say).
    pub async fn ack(
        &mut self,
        command: &str,
        message: &Frame,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        let owned = self.ack_headers(message)?;
        let mut headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        headers.extend_from_slice(extra);
        self.request(command, &headers, "").await
    }

    /// Cleanup: DISCONNECTs with a receipt and waits for that RECEIPT *or*
    /// the server closing the connection (the strict check of DISCONNECT
    /// is a case of its own), then closes the socket. An ERROR fails.
    pub async fn disconnect(mut self) -> Result<()> {
        self.send(frame("DISCONNECT", &[("receipt", "disconnect")], ""))
            .await?;
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.next_event(deadline).await? {
                Event::Frame(f) if f.command == Command::Error => {
                    bail!("DISCONNECT got {}", describe(&f))
                }
                Event::Frame(f)
                    if f.command == Command::Receipt
                        && f.get("receipt-id") == Some("disconnect") =>
                {
                    break
                }
                Event::Frame(_) | Event::HeartBeat => {}
                Event::Closed => break,
                Event::Timeout => bail!(
                    "DISCONNECT: neither RECEIPT nor close within {} ms",
                    self.timeout.as_millis()
                ),
            }
        }
        self.close().await;
        Ok(())
    }

    /// Closes the connection from the client side (best effort).
    pub async fn close(mut self) {
        match &mut self.transport {
            Transport::Tcp(tcp) => {
                let _ = tcp.shutdown().await;
            }
            Transport::Ws(ws) => {
                let _ = tokio::time::timeout(Duration::from_millis(200), ws.close()).await;
            }
        }
    }
}

fn ws_message(raw: &[u8]) -> Message {
    match std::str::from_utf8(raw) {
        Ok(text) => Message::text(text.to_owned()),
        Err(_) => Message::binary(Bytes::copy_from_slice(raw)),
    }
}

/// A short human description of a frame, for failure messages.
pub fn describe(frame: &Frame) -> String {
    let mut out = frame.command.to_string();
    let interesting = [
        "message",
        "receipt-id",
        "destination",
        "subscription",
        "message-id",
    ];
    let mut parts = Vec::new();
    for name in interesting {
        if let Some(v) = frame.get(name) {
            parts.push(format!("{name}:{v}"));
        }
    }
    if !parts.is_empty() {
        out.push_str(" (");
        out.push_str(&parts.join(", "));
        out.push(')');
    }
    if !frame.body.is_empty() && frame.command == Command::Error {
        let body = String::from_utf8_lossy(&frame.body);
        let body: String = body.chars().take(120).collect();
        out.push_str(&format!(" body {:?}", body.trim()));
    }
    out
}

/// Builds a frame from a command, raw header lines and a body, with LF line
/// endings and the terminating NUL. Header names and values are written
/// verbatim: escaping, if any, is the caller's business.
pub fn frame(command: &str, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut out = Vec::with_capacity(64 + body.len());
    out.extend_from_slice(command.as_bytes());
    out.push(b'\n');
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:61613").unwrap(),
            Endpoint::Tcp {
                addr: "127.0.0.1:61613".into()
            }
        );
        let ws = Endpoint::parse("ws://localhost:15674/ws").unwrap();
        assert_eq!(
            ws,
            Endpoint::Ws {
                addr: "localhost:15674".into(),
                url: "ws://localhost:15674/ws".into()
            }
        );
        assert_eq!(ws.host(), "localhost");
        assert_eq!(Endpoint::parse("tcp://[::1]:1").unwrap().host(), "::1");
        assert_eq!(
            Endpoint::parse("tcp://example").unwrap(),
            Endpoint::Tcp {
                addr: "example:61613".into()
            }
        );
        assert!(Endpoint::parse("http://x").is_err());
        assert!(Endpoint::parse("wss://x").is_err());
    }

    #[test]
    fn builds_frames() {
        assert_eq!(
            frame("SEND", &[("destination", "/queue/a")], "hi"),
            b"SEND\ndestination:/queue/a\n\nhi\0".to_vec()
        );
    }
}
