//! Hostile input, over TCP and over WebSocket: oversize frames, header
//! floods, bad escapes, invalid UTF-8, lying `content-length`s, byte-by-byte
//! frames, slowloris, a million SUBSCRIBEs, garbage between frames, bad
//! WebSocket handshakes, rate limits and the per-address connection limit.
//!
//! Every case is a function taking a [`Transport`] (the `both!` macro makes
//! a `tcp` and a `ws` test of it) and checks three things: the broker
//! answers as the specification says (an ERROR frame with a `message`
//! header, then the connection closes; reads are bounded by timeouts, so a
//! hang fails the test instead of stalling it), a bystander client that
//! connected before the attack still gets its own messages afterwards, and
//! the broker still accepts new clients.
//!
//! `memory_stays_bounded_under_a_gigabyte_of_garbage` runs the real
//! `stompede` binary and streams 1 GiB of hostile bytes at it from several
//! connections at once (most over TCP, a share over WebSocket), sampling the
//! process's RSS every 50 ms: it must stay under [`RSS_BOUND_KIB`].
//!
//! `fuzz_regressions_replay` replays the session fuzzer's reproducers
//! (`broker/fuzz/regressions/*.bin`, raw wire bytes) through an in-process
//! session.

mod common;

use bytes::BytesMut;
use common::{frame, start_with, BrokerProcess, Peer};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stompede::codec::{Command, Frame, Item, StompCodec, Version};
use stompede::config::Config;
use stompede::BrokerHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::Decoder;

/// Longest wait for an answer that must come (ERROR, close, MESSAGE).
const WAIT: Duration = Duration::from_secs(10);
/// Longest a whole case may take.
const CASE_LIMIT: Duration = Duration::from_secs(60);

/// The RSS the broker process must stay under while it is flooded. A debug
/// build starts at about 16 MiB and peaked at about 25 MiB under the flood
/// (8 connections at a time, `max_frame_bytes` 1 MiB); 128 MiB leaves room
/// for allocator slack, yet a broker that buffered what it is sent (or kept
/// what closed connections left behind) would pass it within a second.
const RSS_BOUND_KIB: u64 = 128 * 1024;

// ---------------------------------------------------------------------------
// Transports and a raw connection over either.

/// How a client reaches the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Ws,
}

/// The broker's listener addresses.
#[derive(Debug, Clone, Copy)]
struct Addrs {
    tcp: SocketAddr,
    ws: SocketAddr,
}

impl Addrs {
    fn of(broker: &BrokerHandle) -> Addrs {
        Addrs {
            tcp: broker.tcp_addr().expect("tcp listener"),
            ws: broker.ws_addr().expect("ws listener"),
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Stream {
    Tcp(TcpStream),
    Ws(Box<Ws>),
}

/// What reading a connection gave.
#[derive(Debug)]
enum Event {
    Frame(Frame),
    Closed,
    Timeout,
}

/// A raw STOMP connection: bytes out exactly as given (one WebSocket binary
/// message per write), frames in.
struct Conn {
    stream: Stream,
    codec: StompCodec,
    buf: BytesMut,
    closed: bool,
}

impl Conn {
    /// Opens a connection (not yet CONNECTed); panics if refused.
    async fn open(t: Transport, addrs: Addrs) -> Conn {
        Conn::try_open(t, addrs).await.expect("connection opens")
    }

    /// Opens a connection; a refused WebSocket handshake is an error.
    async fn try_open(t: Transport, addrs: Addrs) -> Result<Conn, String> {
        let stream = match t {
            Transport::Tcp => {
                let s = TcpStream::connect(addrs.tcp)
                    .await
                    .map_err(|e| e.to_string())?;
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                Stream::Tcp(s)
            }
            Transport::Ws => {
                let mut request = format!("ws://{}/ws", addrs.ws)
                    .into_client_request()
                    .map_err(|e| e.to_string())?;
                request.headers_mut().insert(
                    "sec-websocket-protocol",
                    HeaderValue::from_static("v12.stomp"),
                );
                let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
                    .await
                    .map_err(|_| "WebSocket handshake timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                Stream::Ws(Box::new(ws))
            }
        };
        Ok(Conn {
            stream,
            codec: StompCodec::default(),
            buf: BytesMut::new(),
            closed: false,
        })
    }

    /// Writes `bytes` (over WebSocket: as one binary message). Errors come
    /// back: the broker may close while we write.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let write = async {
            match &mut self.stream {
                Stream::Tcp(s) => s.write_all(bytes).await,
                Stream::Ws(ws) => ws
                    .send(Message::binary(bytes.to_vec()))
                    .await
                    .map_err(std::io::Error::other),
            }
        };
        tokio::time::timeout(WAIT, write).await.map_err(|_| {
            std::io::Error::other("write stalled: the broker neither reads nor closes")
        })?
    }

    /// Writes `chunks` until one fails; returns the bytes written.
    async fn flood(&mut self, chunks: impl IntoIterator<Item = Vec<u8>>) -> usize {
        let mut written = 0;
        for chunk in chunks {
            if self.write(&chunk).await.is_err() {
                break;
            }
            written += chunk.len();
        }
        written
    }

    /// The next frame (heart-beats skipped), a close, or a timeout.
    async fn next(&mut self, wait: Duration) -> Event {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(Item::Frame(f))) => return Event::Frame(f),
                Ok(Some(Item::HeartBeat)) => continue,
                Ok(None) => {}
                Err(e) => panic!("the broker sent bytes that do not decode: {e}"),
            }
            if self.closed {
                return Event::Closed;
            }
            let read = async {
                match &mut self.stream {
                    Stream::Tcp(s) => match s.read_buf(&mut self.buf).await {
                        Ok(0) | Err(_) => false,
                        Ok(_) => true,
                    },
                    Stream::Ws(ws) => loop {
                        match ws.next().await {
                            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break false,
                            Some(Ok(Message::Binary(b))) => {
                                self.buf.extend_from_slice(&b);
                                break true;
                            }
                            Some(Ok(Message::Text(t))) => {
                                self.buf.extend_from_slice(t.as_bytes());
                                break true;
                            }
                            Some(Ok(_)) => continue,
                        }
                    },
                }
            };
            match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return Event::Timeout,
                Ok(open) => self.closed = !open,
            }
        }
    }

    /// The next frame, which must be `command`.
    async fn expect(&mut self, command: Command) -> Frame {
        match self.next(WAIT).await {
            Event::Frame(f) if f.command == command => f,
            other => panic!("expected {command:?}, got {other:?}"),
        }
    }

    /// CONNECT with STOMP 1.2 and no heart-beats; expects CONNECTED.
    async fn connect(&mut self) {
        self.write(b"CONNECT\naccept-version:1.2\nhost:localhost\nheart-beat:0,0\n\n\0")
            .await
            .expect("write CONNECT");
        self.expect(Command::Connected).await;
        self.codec.set_version(Version::V1_2);
    }

    /// Reads past RECEIPTs and MESSAGEs to an ERROR, which must carry a
    /// `message` header, then to the end of the connection.
    async fn expect_error_and_close(&mut self) -> Frame {
        let error = loop {
            match self.next(WAIT).await {
                Event::Frame(f) if f.command == Command::Error => break f,
                Event::Frame(f) if matches!(f.command, Command::Receipt | Command::Message) => {
                    continue
                }
                other => panic!("expected an ERROR, got {other:?}"),
            }
        };
        assert!(
            error.get("message").is_some_and(|m| !m.is_empty()),
            "ERROR without a message header: {error:?}"
        );
        self.expect_closed().await;
        error
    }

    /// The connection must close, with no further frame.
    async fn expect_closed(&mut self) {
        match self.next(WAIT).await {
            Event::Closed => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
}

/// A client connected and subscribed before an attack; after it, it must
/// still get what it sends itself.
struct Bystander {
    conn: Conn,
    destination: String,
    round: usize,
}

impl Bystander {
    async fn join(t: Transport, addrs: Addrs) -> Bystander {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let destination = format!("/topic/bystander.{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut conn = Conn::open(t, addrs).await;
        conn.connect().await;
        let subscribe = format!("SUBSCRIBE\nid:b\ndestination:{destination}\nreceipt:sub\n\n\0");
        conn.write(subscribe.as_bytes()).await.expect("subscribe");
        conn.expect(Command::Receipt).await;
        Bystander {
            conn,
            destination,
            round: 0,
        }
    }

    /// A SEND/MESSAGE round trip; panics if the broker does not serve it.
    async fn check(&mut self) {
        self.round += 1;
        let body = format!("still here {}", self.round);
        let send = format!(
            "SEND\ndestination:{}\nreceipt:r{}\ncontent-length:{}\n\n{body}\0",
            self.destination,
            self.round,
            body.len()
        );
        self.conn
            .write(send.as_bytes())
            .await
            .expect("bystander can write");
        let (mut got_message, mut got_receipt) = (false, false);
        while !(got_message && got_receipt) {
            match self.conn.next(WAIT).await {
                Event::Frame(f) if f.command == Command::Message => {
                    assert_eq!(
                        std::str::from_utf8(&f.body).ok(),
                        Some(body.as_str()),
                        "the bystander got a message it did not send: {f:?}"
                    );
                    got_message = true;
                }
                Event::Frame(f) if f.command == Command::Receipt => got_receipt = true,
                other => panic!("the bystander was not served: {other:?}"),
            }
        }
    }
}

/// A broker in this process with small limits and both listeners on.
async fn hostile_broker(adjust: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    config.limits.max_frame_bytes = 64 * 1024;
    config.limits.max_body_bytes = 32 * 1024;
    config.limits.max_headers = 16;
    config.limits.max_header_line_bytes = 1024;
    config.limits.max_subscriptions_per_connection = 100;
    config.websocket.max_message_bytes = 1024 * 1024;
    adjust(&mut config);
    start_with(config).await
}

/// After an attack: the bystander is served and a new client can connect.
async fn still_serving(t: Transport, addrs: Addrs, bystander: &mut Bystander) {
    bystander.check().await;
    let mut newcomer = Bystander::join(t, addrs).await;
    newcomer.check().await;
}

/// A connected attacker.
async fn attacker(t: Transport, addrs: Addrs) -> Conn {
    let mut conn = Conn::open(t, addrs).await;
    conn.connect().await;
    conn
}

/// `bytes` in pieces of `size`.
fn chunks(bytes: &[u8], size: usize) -> Vec<Vec<u8>> {
    bytes.chunks(size).map(<[u8]>::to_vec).collect()
}

/// Runs `case` for `t`, bounded by [`CASE_LIMIT`].
async fn bounded<F: std::future::Future<Output = ()>>(name: &str, case: F) {
    if tokio::time::timeout(CASE_LIMIT, case).await.is_err() {
        panic!("{name} did not finish within {CASE_LIMIT:?}");
    }
}

/// A `tcp` and a `ws` test of one case.
macro_rules! both {
    ($case:ident) => {
        mod $case {
            #[tokio::test]
            async fn tcp() {
                super::bounded(
                    concat!(stringify!($case), " over tcp"),
                    super::$case(super::Transport::Tcp),
                )
                .await;
            }

            #[tokio::test]
            async fn ws() {
                super::bounded(
                    concat!(stringify!($case), " over ws"),
                    super::$case(super::Transport::Ws),
                )
                .await;
            }
        }
    };
}

// ---------------------------------------------------------------------------
// The cases.

both!(oversize_body);
/// A body over `max_body_bytes`: announced by `content-length`, and streamed
/// without one.
async fn oversize_body(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\ncontent-length:40000\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'x', 40_000));
    send.push(0);
    a.flood(chunks(&send, 16 * 1024)).await;
    let e = a.expect_error_and_close().await;
    eprintln!("content-length over the limit: {:?}", e.get("message"));

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'y', 256 * 1024));
    a.flood(chunks(&send, 16 * 1024)).await;
    let e = a.expect_error_and_close().await;
    eprintln!("streamed body over the limit: {:?}", e.get("message"));

    still_serving(t, addrs, &mut bystander).await;
}

both!(oversize_frame);
/// A frame over `max_frame_bytes` whose body is within `max_body_bytes`.
async fn oversize_frame(t: Transport) {
    let broker = hostile_broker(|c| {
        c.limits.max_frame_bytes = 16 * 1024;
        c.limits.max_body_bytes = 64 * 1024;
    })
    .await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\ncontent-length:20000\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'x', 20_000));
    send.push(0);
    a.flood(chunks(&send, 4096)).await;
    a.expect_error_and_close().await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'z', 1024 * 1024));
    let written = a.flood(chunks(&send, 4096)).await;
    a.expect_error_and_close().await;
    eprintln!("unterminated 1 MiB frame: {written} bytes written before the close");

    still_serving(t, addrs, &mut bystander).await;
}

both!(header_flood);
/// More header lines than `max_headers`, and one enormous header line.
async fn header_flood(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\n".to_vec();
    for i in 0..1000 {
        send.extend_from_slice(format!("h{i}:v\n").as_bytes());
    }
    send.extend_from_slice(b"\nbody\0");
    a.flood(chunks(&send, 4096)).await;
    a.expect_error_and_close().await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/x\nx-huge:".to_vec();
    send.extend(std::iter::repeat_n(b'h', 4 * 1024 * 1024));
    let written = a.flood(chunks(&send, 16 * 1024)).await;
    a.expect_error_and_close().await;
    eprintln!("4 MiB header line: {written} bytes written before the close");

    still_serving(t, addrs, &mut bystander).await;
}

both!(bad_escape);
/// `\x` is no STOMP 1.2 escape sequence.
async fn bad_escape(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    a.write(b"SEND\ndestination:/topic/x\nfoo:a\\xb\n\nhi\0")
        .await
        .expect("write");
    a.expect_error_and_close().await;

    let mut a = attacker(t, addrs).await;
    a.write(b"SEND\ndestination:/topic/x\nfoo:trailing\\\n\nhi\0")
        .await
        .expect("write");
    a.expect_error_and_close().await;

    still_serving(t, addrs, &mut bystander).await;
}

both!(invalid_utf8);
/// Header names and values must be UTF-8.
async fn invalid_utf8(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    for bad in [
        &b"SEND\ndestination:/topic/\xff\xfe\n\nhi\0"[..],
        &b"SEND\ndestination:/topic/x\nna\xc3\x28me:v\n\nhi\0"[..],
        &b"SEND\ndestination:/topic/x\nk:\xed\xa0\x80\n\nhi\0"[..],
    ] {
        let mut a = attacker(t, addrs).await;
        a.write(bad).await.expect("write");
        a.expect_error_and_close().await;
    }

    still_serving(t, addrs, &mut bystander).await;
}

both!(lying_content_length);
/// A `content-length` longer than the data, followed by more frames (which
/// must not be smuggled through as frames of their own), and one shorter
/// than the data (the byte at `content-length` is not the NUL).
async fn lying_content_length(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let head = b"SEND\ndestination:/topic/x\ncontent-length:64\n\n";
    let mut rest = b"short\0".to_vec();
    for _ in 0..4 {
        rest.extend_from_slice(
            format!(
                "SEND\ndestination:{}\ncontent-length:8\n\nsmuggled\0",
                bystander.destination
            )
            .as_bytes(),
        );
    }
    assert_ne!(rest[64], 0, "the byte after the announced body is no NUL");
    let mut bytes = head.to_vec();
    bytes.extend_from_slice(&rest);
    a.write(&bytes).await.expect("write");
    a.expect_error_and_close().await;

    let mut a = attacker(t, addrs).await;
    a.write(b"SEND\ndestination:/topic/x\ncontent-length:2\n\nabcdef\0")
        .await
        .expect("write");
    a.expect_error_and_close().await;

    // `check` fails on any MESSAGE other than its own: nothing smuggled.
    still_serving(t, addrs, &mut bystander).await;
}

both!(single_bytes);
/// Frames that arrive one byte at a time still work.
async fn single_bytes(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut c = Conn::open(t, addrs).await;
    let script = b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0\
        SUBSCRIBE\nid:1\ndestination:/topic/bytes\nreceipt:s\n\n\0\
        SEND\ndestination:/topic/bytes\ncontent-length:5\n\nhello\0\
        \n\r\n\
        SEND\ndestination:/topic/bytes\n\nworld\0";
    for (i, b) in script.iter().enumerate() {
        c.write(&[*b]).await.expect("write one byte");
        if i % 16 == 0 {
            tokio::task::yield_now().await;
        }
    }
    c.expect(Command::Connected).await;
    c.codec.set_version(Version::V1_2);
    c.expect(Command::Receipt).await;
    for body in ["hello", "world"] {
        let m = c.expect(Command::Message).await;
        assert_eq!(&m.body[..], body.as_bytes());
    }

    still_serving(t, addrs, &mut bystander).await;
}

both!(slowloris);
/// One byte a second, never a whole CONNECT: the connect timeout closes it.
async fn slowloris(t: Transport) {
    let broker = hostile_broker(|c| c.limits.connect_timeout_ms = 1500).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut c = Conn::open(t, addrs).await;
    let started = Instant::now();
    let mut error = None;
    for b in b"CONNECT\naccept-version:1.2\n".iter() {
        if c.write(&[*b]).await.is_err() {
            break;
        }
        match c.next(Duration::from_secs(1)).await {
            Event::Timeout => continue,
            Event::Frame(f) if f.command == Command::Error => {
                error = Some(f);
                break;
            }
            other => panic!("expected silence or an ERROR, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let error = error.expect("an ERROR before the byte stream ended");
    assert!(error.get("message").is_some(), "{error:?}");
    c.expect_closed().await;
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}, expected about the 1.5 s connect timeout"
    );

    still_serving(t, addrs, &mut bystander).await;
}

both!(million_subscribes);
/// A million pipelined SUBSCRIBEs on one connection, over
/// `max_subscriptions_per_connection`: ERROR and close, without reading
/// (let alone buffering) the rest.
async fn million_subscribes(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    const TOTAL: usize = 1_000_000;
    const PER_CHUNK: usize = 2000;
    let frames = (0..TOTAL / PER_CHUNK).map(|c| {
        let mut chunk = Vec::with_capacity(PER_CHUNK * 48);
        for i in c * PER_CHUNK..(c + 1) * PER_CHUNK {
            chunk.extend_from_slice(
                format!("SUBSCRIBE\nid:{i}\ndestination:/topic/s.{i}\n\n\0").as_bytes(),
            );
        }
        chunk
    });
    let started = Instant::now();
    let written = a.flood(frames).await;
    let e = a.expect_error_and_close().await;
    eprintln!(
        "million SUBSCRIBEs: {written} bytes written in {:?}, then {:?}",
        started.elapsed(),
        e.get("message")
    );
    assert!(
        e.get("message")
            .is_some_and(|m| m.contains("subscriptions")),
        "{e:?}"
    );
    assert!(
        written < 45_000_000,
        "the broker swallowed {written} bytes of SUBSCRIBEs instead of closing"
    );

    still_serving(t, addrs, &mut bystander).await;
}

both!(garbage_after_nul);
/// Bytes other than EOLs between frames.
async fn garbage_after_nul(t: Transport) {
    let broker = hostile_broker(|_| {}).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut long_garbage = b"SEND\ndestination:/topic/x\n\nhi\0".to_vec();
    long_garbage.extend(std::iter::repeat_n(0x01u8, 300));
    for bytes in [
        b"SEND\ndestination:/topic/x\n\nhi\0junk\n\n\0".to_vec(),
        b"SEND\ndestination:/topic/x\n\nhi\0 \t\x7f\n\nSEND\n\n\0".to_vec(),
        long_garbage,
    ] {
        let mut a = attacker(t, addrs).await;
        a.write(&bytes).await.expect("write");
        a.expect_error_and_close().await;
    }

    still_serving(t, addrs, &mut bystander).await;
}

both!(frame_rate_limit);
/// More frames per second than `limits.max_frames_per_second`.
async fn frame_rate_limit(t: Transport) {
    let broker = hostile_broker(|c| c.limits.max_frames_per_second = 100).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let burst: Vec<u8> = b"SEND\ndestination:/topic/rate\n\nx\0".repeat(2000);
    a.flood(chunks(&burst, 8192)).await;
    let e = a.expect_error_and_close().await;
    eprintln!("frame rate: {:?}", e.get("message"));

    still_serving(t, addrs, &mut bystander).await;
}

both!(byte_rate_limit);
/// More bytes per second than `limits.max_bytes_per_second`.
async fn byte_rate_limit(t: Transport) {
    let broker = hostile_broker(|c| c.limits.max_bytes_per_second = 64 * 1024).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;

    let mut a = attacker(t, addrs).await;
    let mut send = b"SEND\ndestination:/topic/rate\ncontent-length:8192\n\n".to_vec();
    send.extend(std::iter::repeat_n(b'b', 8192));
    send.push(0);
    let burst = send.repeat(128);
    a.flood(chunks(&burst, 16 * 1024)).await;
    let e = a.expect_error_and_close().await;
    eprintln!("byte rate: {:?}", e.get("message"));

    still_serving(t, addrs, &mut bystander).await;
}

both!(per_ip_connection_limit);
/// `limits.max_connections_per_ip`: the connection over it is refused (an
/// ERROR over TCP, an HTTP 4xx/5xx over WebSocket); once one closes, a new
/// one is accepted.
async fn per_ip_connection_limit(t: Transport) {
    let broker = hostile_broker(|c| c.limits.max_connections_per_ip = 3).await;
    let addrs = Addrs::of(&broker);
    let mut bystander = Bystander::join(t, addrs).await;
    let second = attacker(t, addrs).await;
    let _third = attacker(t, addrs).await;

    match Conn::try_open(t, addrs).await {
        Ok(mut refused) => {
            let e = refused.expect_error_and_close().await;
            eprintln!("fourth connection: {:?}", e.get("message"));
        }
        Err(e) => {
            assert_eq!(t, Transport::Ws, "a TCP connect must not fail: {e}");
            assert!(
                e.contains("429") || e.contains("503"),
                "expected HTTP 429 or 503, got {e}"
            );
        }
    }

    drop(second);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(mut c) = Conn::try_open(t, addrs).await {
            c.write(b"CONNECT\naccept-version:1.2\nhost:localhost\n\n\0")
                .await
                .ok();
            if let Event::Frame(f) = c.next(WAIT).await {
                if f.command == Command::Connected {
                    break;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no connection accepted after one closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bystander.check().await;
}

// ---------------------------------------------------------------------------
// Bad WebSocket handshakes (raw HTTP on the WebSocket listener).

/// Sends `request` raw, returns the status code of the answer, and checks
/// that the connection is then closed.
async fn http_status(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection stayed open after {:?}; got {:?}",
        String::from_utf8_lossy(&request[..request.len().min(60)]),
        String::from_utf8_lossy(&answer)
    );
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok());
    status
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
const UPGRADE: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\n";

#[tokio::test]
async fn bad_websocket_handshakes_get_http_errors() {
    bounded("bad WebSocket handshakes", async {
        let broker = hostile_broker(|c| {
            c.websocket.allowed_origins = vec!["https://good.example".into()];
        })
        .await;
        let addrs = Addrs::of(&broker);
        let mut bystander = Bystander::join(Transport::Ws, addrs).await;

        let huge = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\nX-Big: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let cases: Vec<(&str, String, u16)> = vec![
            (
                "POST",
                format!("POST /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\n\r\n"),
                405,
            ),
            (
                "no key",
                format!("GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}Sec-WebSocket-Version: 13\r\n\r\n"),
                400,
            ),
            (
                "version 8",
                format!("GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 8\r\n\r\n"),
                426,
            ),
            (
                "no upgrade",
                "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
                426,
            ),
            (
                "wrong path",
                format!("GET /nope HTTP/1.1\r\nHost: x\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\n\r\n"),
                404,
            ),
            (
                "foreign origin",
                format!("GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\n\r\n"),
                403,
            ),
            ("huge head", huge, 431),
            ("not HTTP", "\x16\x03\x01\x02\x00garbage\r\n\r\n".to_owned(), 400),
        ];
        let mut mismatches = Vec::new();
        for (name, request, expected) in &cases {
            let status = http_status(addrs.ws, request.as_bytes()).await;
            eprintln!("{name}: HTTP {status:?} (expected {expected})");
            assert!(
                status.is_some_and(|s| (400..500).contains(&s)),
                "{name}: expected an HTTP 4xx status line, got {status:?}"
            );
            if status != Some(*expected) {
                mismatches.push(format!("{name}: {status:?} instead of {expected}"));
            }
        }
        assert!(mismatches.is_empty(), "status codes: {mismatches:?}");

        // An allowed origin still gets its WebSocket.
        let mut s = TcpStream::connect(addrs.ws).await.expect("connect");
        s.write_all(
            format!("GET /ws HTTP/1.1\r\nHost: x\r\nOrigin: https://good.example\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("write");
        let mut buf = [0u8; 12];
        tokio::time::timeout(WAIT, s.read_exact(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        assert_eq!(&buf, b"HTTP/1.1 101");

        still_serving(Transport::Ws, addrs, &mut bystander).await;
    })
    .await;
}

/// Slowloris on the WebSocket listener's HTTP front: an upgrade request a
/// byte at a time (and one that sends nothing) is cut at the connect
/// timeout.
#[tokio::test]
async fn slow_http_upgrade_is_cut_at_the_connect_timeout() {
    bounded("slow HTTP upgrade", async {
        let broker = hostile_broker(|c| c.limits.connect_timeout_ms = 1500).await;
        let addrs = Addrs::of(&broker);
        let mut bystander = Bystander::join(Transport::Ws, addrs).await;

        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\n{UPGRADE}{KEY}Sec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut slow = TcpStream::connect(addrs.ws).await.expect("connect");
        let mut silent = TcpStream::connect(addrs.ws).await.expect("connect");
        let started = Instant::now();
        let mut answer = Vec::new();
        let mut closed = false;
        for b in request.as_bytes() {
            if slow.write_all(&[*b]).await.is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 1024];
            match tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed = true;
                    break;
                }
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            }
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "still open after 4 s"
            );
        }
        let elapsed = started.elapsed();
        eprintln!(
            "slow upgrade closed after {elapsed:?} with {:?}",
            String::from_utf8_lossy(&answer)
        );
        assert!(closed, "the slow request was let through");
        assert!(
            elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_secs(4),
            "closed after {elapsed:?}, expected about the 1.5 s connect timeout"
        );
        let mut rest = Vec::new();
        let silent_read =
            tokio::time::timeout(Duration::from_secs(3), silent.read_to_end(&mut rest)).await;
        assert!(
            silent_read.is_ok(),
            "a silent connection outlived the connect timeout"
        );

        still_serving(Transport::Ws, addrs, &mut bystander).await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Memory under a flood, against the real binary.

/// A xorshift generator: garbage without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// What one flooding connection did.
#[derive(Debug, Default)]
struct Outcome {
    errors: u64,
    closes: u64,
    connections: u64,
}

/// The three kinds of flooding connection, in turn.
#[derive(Debug, Clone, Copy)]
enum Flood {
    /// CONNECT, then SENDs with garbage bodies (announced lengths within the
    /// limits) to a topic nobody reads, up to 8 MiB, then a SEND that
    /// announces a body over `max_body_bytes`.
    GarbageBodies,
    /// CONNECT, then a SEND whose garbage body never ends (no NUL): refused
    /// at `max_frame_bytes`.
    Unterminated,
    /// Garbage from the first byte: refused at once.
    Raw,
}

/// One flooding client: opens connections one after another until `budget`
/// is spent; every connection must be refused with an ERROR (or, for raw
/// garbage over WebSocket, closed) and closed.
async fn flood_worker(
    t: Transport,
    addrs: Addrs,
    garbage: Arc<Vec<u8>>,
    budget: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    seed: usize,
) -> Outcome {
    let mut out = Outcome::default();
    let kinds = [Flood::GarbageBodies, Flood::Unterminated, Flood::Raw];
    let mut turn = seed;
    let no_nul: Vec<u8> = garbage
        .iter()
        .map(|&b| if b == 0 { 1 } else { b })
        .collect();
    while budget.load(Ordering::Relaxed) > 0 {
        turn += 1;
        let kind = kinds[turn % kinds.len()];
        let mut conn = Conn::open(t, addrs).await;
        out.connections += 1;
        let mut written = 0u64;
        let offset = (turn * 7919) % (garbage.len() / 2);
        match kind {
            Flood::GarbageBodies => {
                conn.connect().await;
                const BODY: usize = 256 * 1024;
                let head =
                    format!("SEND\ndestination:/topic/void.{turn}\ncontent-length:{BODY}\n\n");
                let mut frame = head.into_bytes();
                frame.extend_from_slice(&garbage[offset..offset + BODY]);
                frame.push(0);
                for _ in 0..(8 * 1024 * 1024 / BODY) {
                    if conn.write(&frame).await.is_err() {
                        break;
                    }
                    written += frame.len() as u64;
                    if budget.load(Ordering::Relaxed) < written {
                        break;
                    }
                }
                let _ = conn
                    .write(b"SEND\ndestination:/topic/void\ncontent-length:104857600\n\n")
                    .await;
            }
            Flood::Unterminated => {
                conn.connect().await;
                let _ = conn.write(b"SEND\ndestination:/topic/void\n\n").await;
                let mut at = offset;
                loop {
                    let piece = &no_nul[at..at + 64 * 1024];
                    at = (at + 64 * 1024) % (no_nul.len() - 64 * 1024);
                    if conn.write(piece).await.is_err() {
                        break;
                    }
                    written += piece.len() as u64;
                    assert!(
                        written < 64 * 1024 * 1024,
                        "the broker took {written} bytes of one unterminated frame"
                    );
                }
            }
            Flood::Raw => {
                let mut at = offset;
                loop {
                    let piece = &garbage[at..at + 64 * 1024];
                    at = (at + 64 * 1024) % (garbage.len() - 64 * 1024);
                    if conn.write(piece).await.is_err() {
                        break;
                    }
                    written += piece.len() as u64;
                    assert!(
                        written < 64 * 1024 * 1024,
                        "the broker took {written} bytes of raw garbage"
                    );
                }
            }
        }
        sent.fetch_add(written, Ordering::Relaxed);
        let _ = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
            Some(b.saturating_sub(written))
        });
        // The answer: an ERROR then the close, or (garbage that is not even
        // a frame, e.g. a WebSocket peer's) just the close; never a hang.
        loop {
            match conn.next(WAIT).await {
                Event::Frame(f) if f.command == Command::Error => {
                    assert!(f.get("message").is_some(), "{f:?}");
                    out.errors += 1;
                }
                Event::Frame(f) => panic!("{kind:?}: unexpected {f:?}"),
                Event::Closed => {
                    out.closes += 1;
                    break;
                }
                Event::Timeout => {
                    panic!("{kind:?} over {t:?}: the broker neither answered nor closed")
                }
            }
        }
    }
    out
}

/// 1 GiB of hostile bytes at the real binary (`max_frame_bytes` 1 MiB):
/// six TCP and two WebSocket clients (128 MiB of the total;
/// `STOMPEDE_FLOOD_WS_MIB` changes it), each opening connection after
/// connection of the [`Flood`] kinds in turn; every connection must end
/// with an ERROR and a close. Meanwhile the broker's RSS is sampled every
/// 50 ms and a bystander does a round trip every 200 ms. A debug build
/// takes about a second (loopback, ~1.4 GiB/s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_a_gigabyte_of_garbage() {
    const TOTAL: u64 = 1 << 30;
    // The WebSocket share (MiB; `STOMPEDE_FLOOD_WS_MIB` overrides it).
    let ws_share: u64 = std::env::var("STOMPEDE_FLOOD_WS_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
        << 20;
    let mut broker = BrokerProcess::spawn(
        "[limits]\nmax_frame_bytes = 1048576\nmax_body_bytes = 524288\nconnect_timeout_ms = 5000\n\
         [websocket]\nmax_message_bytes = 1048576\n[log]\nlevel = \"error\"\n",
    )
    .await;
    let addrs = Addrs {
        tcp: broker.tcp,
        ws: broker.ws,
    };
    let pid = broker.pid();
    let baseline = broker.rss_kib().expect("rss");

    // Sample the RSS every 50 ms on a thread of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = common::rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            samples
        })
    };

    // A bystander that keeps doing round trips during the flood.
    let bystander = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut b = Bystander::join(Transport::Tcp, addrs).await;
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) {
                b.check().await;
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            b.check().await;
            rounds + 1
        })
    };

    let garbage = Arc::new(Rng(0x9e37_79b9_7f4a_7c15).bytes(4 << 20));
    let sent = Arc::new(AtomicU64::new(0));
    let tcp_budget = Arc::new(AtomicU64::new(TOTAL - ws_share));
    let ws_budget = Arc::new(AtomicU64::new(ws_share));
    let started = Instant::now();
    let mut workers = Vec::new();
    for i in 0..6 {
        workers.push(tokio::spawn(flood_worker(
            Transport::Tcp,
            addrs,
            Arc::clone(&garbage),
            Arc::clone(&tcp_budget),
            Arc::clone(&sent),
            i,
        )));
    }
    for i in 0..if ws_share > 0 { 2 } else { 0 } {
        workers.push(tokio::spawn(flood_worker(
            Transport::Ws,
            addrs,
            Arc::clone(&garbage),
            Arc::clone(&ws_budget),
            Arc::clone(&sent),
            i,
        )));
    }
    let mut total = Outcome::default();
    let all = async {
        for w in workers {
            let o = w.await.expect("flood worker");
            total.errors += o.errors;
            total.closes += o.closes;
            total.connections += o.connections;
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(120), all).await;
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rounds = tokio::time::timeout(WAIT * 2, bystander)
        .await
        .expect("the bystander finishes")
        .expect("the bystander was served throughout");
    let samples = sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "flood: {} MiB in {elapsed:?} ({:.0} MiB/s) over {} connections ({} ERRORs, {} closes); \
         RSS baseline {} KiB, peak {} KiB ({samples} samples), bound {} KiB; bystander rounds {rounds}",
        sent >> 20,
        (sent >> 20) as f64 / elapsed.as_secs_f64(),
        total.connections,
        total.errors,
        total.closes,
        baseline,
        peak,
        RSS_BOUND_KIB,
    );
    assert!(finished.is_ok(), "the flood did not finish within 120 s");
    assert!(sent >= TOTAL, "only {sent} bytes were sent");
    assert!(
        peak < RSS_BOUND_KIB,
        "RSS peaked at {peak} KiB, over the {RSS_BOUND_KIB} KiB bound"
    );
    assert!(broker.is_alive(), "the broker died:\n{}", broker.log());
    assert!(total.errors > 0);
    let mut after = Bystander::join(Transport::Ws, addrs).await;
    after.check().await;
}

// ---------------------------------------------------------------------------
// The session fuzzer's reproducers.

/// Replays every `broker/fuzz/regressions/*.bin` (raw bytes a fuzz input
/// wrote to a session) through an in-process session of a broker configured
/// like the fuzzer's (`broker/fuzz/fuzz-config.toml`): the session must end
/// once its input does, and the broker must serve the next client.
#[tokio::test]
async fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "bin"));
    files.sort();
    let config = std::fs::read_to_string(dir.with_file_name("fuzz-config.toml"))
        .expect("broker/fuzz/fuzz-config.toml");
    let config = Config::from_toml(&config).expect("the fuzz config parses");
    let broker = common::launch(config).await;
    for file in &files {
        let bytes = std::fs::read(file).expect("read reproducer");
        let pipe = broker.connect_in_process();
        let (mut rd, mut wr) = tokio::io::split(pipe);
        let write = async {
            let _ = wr.write_all(&bytes).await;
            let _ = wr.shutdown().await;
        };
        let read = async {
            let mut sink = Vec::new();
            let _ = rd.read_to_end(&mut sink).await;
        };
        tokio::time::timeout(WAIT, async { tokio::join!(write, read) })
            .await
            .unwrap_or_else(|_| panic!("{}: the session did not end", file.display()));
        let mut client = Peer::new(broker.connect_in_process());
        client.connect("1.2", None).await;
        client.subscribe("1", "/topic/after", "auto").await;
        client
            .request(frame(Command::Send, &[("destination", "/topic/after")]).body("ok"))
            .await;
        client.expect_message("ok").await;
    }
    eprintln!("replayed {} fuzz reproducers", files.len());
}

/// The topics and patterns that have subscribers, from the admin API.
async fn topics_with_subscribers(admin: SocketAddr) -> String {
    let mut s = TcpStream::connect(admin).await.expect("admin");
    s.write_all(b"GET /api/topics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut answer))
        .await
        .expect("admin answers")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.replace(char::is_whitespace, ""))
        .unwrap_or_default()
}

/// Found by the session fuzzer: an UNSUBSCRIBE with `persistent:true` (or
/// `durable:true`) of a plain topic subscription, from a client with a
/// login, drops the subscription from the session but leaves its
/// subscriber in the topic table for ever: every repetition leaks one, and
/// every publish to a matching topic fans out to all of them (memory and
/// CPU grow without bound; the fuzzer's executions slowed from 4,000/s to
/// a few hundred). Reproducer: `broker/fuzz/regressions/
/// durable-unsubscribe-of-a-plain-topic-subscription.bin`.
#[tokio::test]
async fn durable_unsubscribe_of_a_plain_topic_subscription_leaves_no_subscriber() {
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = "127.0.0.1:0".into();
    let broker = common::launch(config).await;
    let admin = broker.admin_addr().expect("admin listener");
    for unsubscribe in ["persistent:true", "durable:true"] {
        for destination in ["/topic/t.*", "/topic/t.0"] {
            let mut c = Peer::new(broker.connect_in_process());
            c.connect("1.2", Some("fuzz0")).await;
            c.subscribe("s5", destination, "auto").await;
            c.raw(format!("UNSUBSCRIBE\nid:s5\n{unsubscribe}\nreceipt:u\n\n\0").as_bytes())
                .await;
            let _ = c.try_frame(WAIT).await;
            c.raw(b"DISCONNECT\nreceipt:bye\n\n\0").await;
            let _ = c.try_frame(WAIT).await;
            c.expect_closed().await;
            let topics = topics_with_subscribers(admin).await;
            assert_eq!(
                topics, "[]",
                "after UNSUBSCRIBE {unsubscribe} of {destination} and the close: {topics}"
            );
        }
    }
}
