//! STOMP connections over TCP or WebSocket: connecting, the STOMP
//! handshake, batched frame writes and batched frame reads.
//!
//! Over WebSocket every STOMP frame is one (text) message, as browser
//! clients send them; received messages are appended to the same byte
//! buffer the TCP path uses, so one parser serves both.

use crate::scan::{drain_codec, drain_fast, Cmd, FrameView, ParserKind};
use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use std::time::Duration;
use stompede_codec::{StompCodec, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// A client WebSocket over plain TCP.
pub type WsStream = WebSocketStream<TcpStream>;

/// The transport a scenario uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransportKind {
    /// STOMP over plain TCP.
    Tcp,
    /// STOMP over WebSocket (subprotocol `v12.stomp`).
    Ws,
}

impl TransportKind {
    /// `tcp` or `ws`.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Ws => "ws",
        }
    }
}

/// Where the broker listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `host:port` of the STOMP-over-TCP listener.
    pub tcp_addr: String,
    /// Full `ws://host:port/path` URL of the WebSocket listener.
    pub ws_url: String,
    /// `host:port` part of `ws_url`.
    pub ws_addr: String,
}

impl Endpoints {
    /// Parses `tcp://host:port` (or `host:port`) and `ws://host:port/path`.
    pub fn parse(tcp: &str, ws: &str) -> Result<Self> {
        let tcp_addr = tcp
            .strip_prefix("tcp://")
            .unwrap_or(tcp)
            .trim_end_matches('/');
        if !tcp_addr.contains(':') {
            bail!("--tcp must be tcp://host:port, got {tcp:?}");
        }
        let rest = ws
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("--ws must be ws://host:port/path, got {ws:?}"))?;
        let ws_addr = rest.split('/').next().unwrap_or(rest);
        if !ws_addr.contains(':') {
            bail!("--ws must name a port: ws://host:port/path, got {ws:?}");
        }
        Ok(Endpoints {
            tcp_addr: tcp_addr.to_owned(),
            ws_url: ws.to_owned(),
            ws_addr: ws_addr.to_owned(),
        })
    }

    /// The port of an `host:port` address.
    pub fn port_of(addr: &str) -> Option<u16> {
        addr.rsplit(':').next()?.parse().ok()
    }
}

/// Per-connection options.
#[derive(Debug, Clone, Copy)]
pub struct ConnOpts {
    /// Which parser reads frames.
    pub parser: ParserKind,
    /// Small buffers (idle connections): 4 KiB instead of 128 KiB.
    pub small_buffers: bool,
}

/// Where received bytes come from.
enum Source {
    Tcp(OwnedReadHalf),
    Ws(SplitStream<WsStream>),
}

/// The receiving half: reads in large chunks and hands out every complete
/// frame of a chunk at once.
pub struct FrameReader {
    src: Source,
    buf: BytesMut,
    chunk: usize,
    parser: ParserKind,
    codec: StompCodec,
    eof: bool,
}

/// Most WebSocket messages gathered by one [`FrameReader::fill`].
const WS_MESSAGES_PER_FILL: usize = 512;

impl FrameReader {
    fn new(src: Source, opts: &ConnOpts) -> Self {
        let chunk = if opts.small_buffers { 4096 } else { 256 * 1024 };
        FrameReader {
            src,
            buf: BytesMut::with_capacity(chunk),
            chunk,
            parser: opts.parser,
            codec: StompCodec::default(),
            eof: false,
        }
    }

    /// Waits for more bytes and appends them to the buffer; `Ok(false)` at
    /// end of stream. Cancel-safe.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        match &mut self.src {
            Source::Tcp(r) => {
                if self.buf.capacity() - self.buf.len() < self.chunk / 2 {
                    self.buf.reserve(self.chunk);
                }
                let n = r.read_buf(&mut self.buf).await.context("read")?;
                if n == 0 {
                    self.eof = true;
                }
                Ok(n > 0)
            }
            Source::Ws(s) => {
                let first = s.next().await;
                if !append_ws(&mut self.buf, first)? {
                    self.eof = true;
                    return Ok(false);
                }
                // Take whatever else is already buffered without waiting.
                for _ in 0..WS_MESSAGES_PER_FILL {
                    match s.next().now_or_never() {
                        None => break,
                        Some(next) => {
                            if !append_ws(&mut self.buf, next)? {
                                self.eof = true;
                                break;
                            }
                        }
                    }
                }
                Ok(true)
            }
        }
    }

    /// Calls `f` for every complete frame buffered; an ERROR frame is an
    /// error. Returns the number of frames.
    pub fn drain<F>(&mut self, mut f: F) -> Result<usize>
    where
        F: FnMut(&FrameView<'_>) -> Result<()>,
    {
        let check = |v: &FrameView<'_>| -> Result<()> {
            if v.command == Cmd::Error {
                bail!("broker sent ERROR: {}", v.describe());
            }
            f(v)
        };
        match self.parser {
            ParserKind::Fast => drain_fast(&mut self.buf, check),
            ParserKind::Codec => drain_codec(&mut self.codec, &mut self.buf, check),
        }
    }

    /// Reads until a RECEIPT with `receipt_id` arrives; every other frame
    /// goes to `other`. Fails at end of stream.
    pub async fn wait_receipt<F>(&mut self, receipt_id: &[u8], mut other: F) -> Result<()>
    where
        F: FnMut(&FrameView<'_>) -> Result<()>,
    {
        let mut found = false;
        loop {
            self.drain(|v| {
                if !found && v.command == Cmd::Receipt && v.receipt_id == receipt_id {
                    found = true;
                    Ok(())
                } else {
                    other(v)
                }
            })?;
            if found {
                return Ok(());
            }
            if !self.fill().await? {
                bail!(
                    "connection closed while waiting for RECEIPT {}",
                    String::from_utf8_lossy(receipt_id)
                );
            }
        }
    }

    fn set_version(&mut self, v: Version) {
        self.codec.set_version(v);
    }
}

/// Appends one WebSocket message's payload; `Ok(false)` when the stream
/// ended.
fn append_ws(
    buf: &mut BytesMut,
    item: Option<Result<Message, tungstenite::Error>>,
) -> Result<bool> {
    match item {
        None | Some(Err(tungstenite::Error::ConnectionClosed)) => Ok(false),
        Some(Err(e)) => Err(anyhow!(e).context("websocket read")),
        Some(Ok(Message::Text(t))) => {
            buf.extend_from_slice(t.as_bytes());
            Ok(true)
        }
        Some(Ok(Message::Binary(b))) => {
            buf.extend_from_slice(&b);
            Ok(true)
        }
        Some(Ok(Message::Close(_))) => Ok(false),
        Some(Ok(_)) => Ok(true),
    }
}

/// Encoded frames waiting to be written, with each frame's end offset
/// (WebSocket sends one message per frame).
#[derive(Debug, Default)]
pub struct OutBatch {
    /// The encoded bytes.
    pub bytes: BytesMut,
    ends: Vec<usize>,
}

impl OutBatch {
    /// An empty batch with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        OutBatch {
            bytes: BytesMut::with_capacity(bytes),
            ends: Vec::with_capacity(256),
        }
    }

    /// Marks everything appended so far as complete frames' bytes.
    #[inline]
    pub fn end_frame(&mut self) {
        self.ends.push(self.bytes.len());
    }

    /// Appends a whole encoded frame.
    pub fn push_frame(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.end_frame();
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.ends.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

/// The sending half.
pub enum FrameWriter {
    /// STOMP over TCP: one write per batch.
    Tcp(OwnedWriteHalf),
    /// STOMP over WebSocket: one message per frame, one flush per batch.
    Ws(SplitSink<WsStream, Message>),
}

impl FrameWriter {
    /// Writes every frame of `out` and clears it.
    pub async fn send(&mut self, out: &mut OutBatch) -> Result<()> {
        match self {
            FrameWriter::Tcp(w) => {
                w.write_all(&out.bytes).await.context("write")?;
                out.clear();
            }
            FrameWriter::Ws(sink) => {
                let all: Bytes = out.bytes.split().freeze();
                let mut start = 0;
                for &end in &out.ends {
                    let frame = all.slice(start..end);
                    start = end;
                    let msg = match Utf8Bytes::try_from(frame.clone()) {
                        Ok(text) => Message::Text(text),
                        Err(_) => Message::Binary(frame),
                    };
                    sink.feed(msg).await.context("websocket write")?;
                }
                sink.flush().await.context("websocket flush")?;
                out.ends.clear();
                drop(all);
                // Reuse the allocation now that the frozen copy is gone.
                out.bytes.reserve(start.max(4096));
            }
        }
        Ok(())
    }

    /// Closes the connection (FIN or WebSocket close), ignoring errors.
    pub async fn close(&mut self) {
        match self {
            FrameWriter::Tcp(w) => {
                let _ = w.shutdown().await;
            }
            FrameWriter::Ws(sink) => {
                let _ = sink.close().await;
            }
        }
    }
}

/// An open, STOMP-connected connection.
pub struct Conn {
    /// Receiving half.
    pub reader: FrameReader,
    /// Sending half.
    pub writer: FrameWriter,
}

/// The CONNECT frame every benchmark connection sends (STOMP 1.2, no
/// heart-beats).
pub const CONNECT_TEXT: &str = "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\n\n\0";

/// [`CONNECT_TEXT`] as bytes.
pub const CONNECT_FRAME: &[u8] = CONNECT_TEXT.as_bytes();

/// The WebSocket configuration for a connection.
pub fn ws_config(small_buffers: bool) -> WebSocketConfig {
    let config = WebSocketConfig::default();
    if small_buffers {
        config.read_buffer_size(4096).write_buffer_size(0)
    } else {
        config
    }
}

/// Opens a TCP connection (`TCP_NODELAY` set).
pub async fn tcp_connect(addr: &str) -> Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr}"))?;
    s.set_nodelay(true).context("set TCP_NODELAY")?;
    Ok(s)
}

/// Opens a WebSocket offering the `v12.stomp` subprotocol.
pub async fn ws_connect(ep: &Endpoints, small_buffers: bool) -> Result<WsStream> {
    let tcp = tcp_connect(&ep.ws_addr).await?;
    let mut req = ep
        .ws_url
        .as_str()
        .into_client_request()
        .context("bad --ws URL")?;
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("v12.stomp"),
    );
    let (ws, _resp) =
        tokio_tungstenite::client_async_with_config(req, tcp, Some(ws_config(small_buffers)))
            .await
            .with_context(|| format!("websocket handshake with {}", ep.ws_url))?;
    Ok(ws)
}

/// Opens a connection and completes the STOMP handshake.
pub async fn open(ep: &Endpoints, kind: TransportKind, opts: &ConnOpts) -> Result<Conn> {
    open_as(ep, kind, opts, None).await
}

/// [`open`], with a `login` header on the CONNECT when `login` is given
/// (a stompede broker in `dev` auth mode takes it as the user name; the
/// chat plugin needs one).
pub async fn open_as(
    ep: &Endpoints,
    kind: TransportKind,
    opts: &ConnOpts,
    login: Option<&str>,
) -> Result<Conn> {
    let (reader, writer) = match kind {
        TransportKind::Tcp => {
            let (r, w) = tcp_connect(&ep.tcp_addr).await?.into_split();
            (FrameReader::new(Source::Tcp(r), opts), FrameWriter::Tcp(w))
        }
        TransportKind::Ws => {
            let (w, r) = ws_connect(ep, opts.small_buffers).await?.split();
            (FrameReader::new(Source::Ws(r), opts), FrameWriter::Ws(w))
        }
    };
    let mut conn = Conn { reader, writer };
    let mut out = OutBatch::with_capacity(128);
    match login {
        None => out.push_frame(CONNECT_FRAME),
        Some(user) => out.push_frame(
            format!("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\nlogin:{user}\npasscode:x\n\n\0")
                .as_bytes(),
        ),
    }
    conn.writer.send(&mut out).await?;
    let mut connected = false;
    while !connected {
        conn.reader.drain(|v| match v.command {
            Cmd::Connected => {
                connected = true;
                Ok(())
            }
            _ => bail!("expected CONNECTED, got {}", v.describe()),
        })?;
        if !connected && !conn.reader.fill().await? {
            bail!("connection closed before CONNECTED");
        }
    }
    conn.reader.set_version(Version::V1_2);
    Ok(conn)
}

/// A SUBSCRIBE to send.
#[derive(Debug, Clone)]
pub struct SubSpec {
    /// The subscription id.
    pub id: String,
    /// The destination.
    pub destination: String,
    /// The `ack` mode (`auto`, `client`, `client-individual`).
    pub ack: &'static str,
    /// `prefetch-count`, if any.
    pub prefetch: Option<u32>,
}

/// Sends every SUBSCRIBE in one batch (the last asks for a receipt) and
/// waits for the receipt, so all are in effect on return.
pub async fn subscribe_all(conn: &mut Conn, subs: &[SubSpec]) -> Result<()> {
    let mut out = OutBatch::with_capacity(subs.len() * 96 + 64);
    for (i, s) in subs.iter().enumerate() {
        let mut f = format!(
            "SUBSCRIBE\nid:{}\ndestination:{}\nack:{}\n",
            s.id, s.destination, s.ack
        );
        if let Some(p) = s.prefetch {
            f.push_str(&format!("prefetch-count:{p}\n"));
        }
        if i + 1 == subs.len() {
            f.push_str("receipt:subscribed\n");
        }
        f.push_str("\n\0");
        out.push_frame(f.as_bytes());
    }
    conn.writer.send(&mut out).await?;
    conn.reader
        .wait_receipt(b"subscribed", |v| {
            bail!("unexpected frame while subscribing: {}", v.describe())
        })
        .await
}

/// Sends DISCONNECT with a receipt and reads until it arrives, handing
/// every other frame to `other`; then closes the connection.
pub async fn disconnect<F>(conn: &mut Conn, timeout: Duration, other: F) -> Result<()>
where
    F: FnMut(&FrameView<'_>) -> Result<()>,
{
    let mut out = OutBatch::with_capacity(64);
    out.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
    conn.writer.send(&mut out).await?;
    tokio::time::timeout(timeout, conn.reader.wait_receipt(b"bye", other))
        .await
        .map_err(|_| anyhow!("no RECEIPT for DISCONNECT within {timeout:?}"))??;
    conn.writer.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoints::parse("tcp://127.0.0.1:61613", "ws://127.0.0.1:15674/ws").unwrap();
        assert_eq!(e.tcp_addr, "127.0.0.1:61613");
        assert_eq!(e.ws_addr, "127.0.0.1:15674");
        assert_eq!(Endpoints::port_of(&e.ws_addr), Some(15674));
        assert!(Endpoints::parse("nohost", "ws://a:1/ws").is_err());
        assert!(Endpoints::parse("a:1", "http://a:1/ws").is_err());
    }
}
