// The session fuzz harness (`fuzz_targets/session.rs`).
//
// One broker per process (a `OnceLock` with its own current-thread tokio
// runtime, in-memory store, small limits and bounded queues, so that state
// left behind by earlier inputs cannot grow without bound). Each input is
// turned into bytes: mostly well-formed frames built from a structured
// description (`arbitrary`): SEND / SUBSCRIBE / UNSUBSCRIBE / ACK / NACK /
// BEGIN / COMMIT / ABORT / DISCONNECT / CONNECT with receipts,
// transactions, queue / topic / temp-queue / user / durable destinations
// and the headers the broker interprets, plus some mangled frames and raw
// bytes. The bytes are written to a fresh in-process session
// (`BrokerHandle::connect_in_process`) in chunks, yielding between chunks so
// the session sees partial frames; then the write side is closed and the
// output read until the session closes.
//
// Checks: no panic anywhere in the broker (libFuzzer's panic hook aborts on
// a panic in any thread, session tasks included); the session ends within
// 5 s once its input has ended (no hang); memory is bounded by the
// `-rss_limit_mb` / `-malloc_limit_mb` flags of `run.sh`.
//
// `STOMPEDE_FUZZ_DUMP=FILE` writes the input's bytes to FILE: the raw
// reproducer that `broker/tests/hostile.rs` replays from `regressions/`.

use arbitrary::Arbitrary;
use bytes::BytesMut;
use std::sync::OnceLock;
use std::time::Duration;
use stompede::codec::{encode_frame, Command, Frame, Version};
use stompede::{Broker, BrokerHandle, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

/// The broker's configuration: no listeners, small limits, bounded queues.
const CONFIG: &str = include_str!("fuzz-config.toml");

/// How long a session may take to end once its input has ended.
const SESSION_END: Duration = Duration::from_secs(5);

struct Fuzz {
    rt: Runtime,
    broker: BrokerHandle,
}

fn fuzz() -> &'static Fuzz {
    static FUZZ: OnceLock<Fuzz> = OnceLock::new();
    FUZZ.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let config = Config::from_toml(CONFIG).expect("fuzz config");
        let broker = rt
            .block_on(
                Broker::builder()
                    .config(config)
                    .store_in_memory()
                    .build()
                    .start(),
            )
            .expect("broker starts");
        Fuzz { rt, broker }
    })
}

/// A short string (at most 16 chars).
#[derive(Debug)]
pub struct Text(String);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let s: &str = u.arbitrary()?;
        Ok(Text(s.chars().take(16).collect()))
    }
}

/// One fuzz input: how the session starts, what follows, how it ends.
#[derive(Arbitrary, Debug)]
pub struct Input {
    hello: Hello,
    ops: Vec<Op>,
    /// Write size: 0 writes everything at once.
    chunk: u8,
    end: End,
}

#[derive(Arbitrary, Debug)]
enum Hello {
    Connect12,
    Connect11,
    Connect10,
    Stomp,
    Connect {
        accept: Text,
        heart_beat: Option<(u16, u16)>,
        login: Option<u8>,
        client_id: Option<u8>,
    },
    Nothing,
}

#[derive(Arbitrary, Debug)]
enum End {
    Disconnect { receipt: bool },
    Eof,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Frame(FrameOp),
    Frame2(FrameOp),
    Frame3(FrameOp),
    HeartBeat,
    Raw(Vec<u8>),
    Mangled { frame: FrameOp, mangle: Mangle },
}

#[derive(Arbitrary, Debug)]
enum Mangle {
    Truncate(u16),
    Flip {
        at: u16,
        byte: u8,
    },
    /// An extra (first, so winning) `content-length` header.
    LieLength(u16),
    DropNul,
}

#[derive(Arbitrary, Debug)]
struct FrameOp {
    command: Cmd,
    receipt: Option<u8>,
    transaction: Option<u8>,
    headers: Vec<Hdr>,
    body: Body,
}

#[derive(Arbitrary, Debug)]
enum Cmd {
    Send(Dest),
    Subscribe {
        id: u8,
        dest: Dest,
        ack: Ack,
    },
    Unsubscribe {
        id: u8,
    },
    Ack {
        id: u8,
    },
    Nack {
        id: u8,
    },
    Begin,
    Commit,
    Abort,
    Disconnect,
    Connect,
    /// Any command, with only the headers of the list.
    Any(u8),
}

#[derive(Arbitrary, Debug)]
enum Ack {
    Auto,
    Client,
    ClientIndividual,
    Bogus(Text),
}

#[derive(Arbitrary, Debug)]
enum Dest {
    Topic(u8),
    TopicStar,
    TopicHash,
    Queue(u8),
    DeadLetters,
    TempQueue(u8),
    User,
    UserSub,
    ReplyQueue,
    Durable,
    Unknown,
    Empty,
    TopicText(Text),
}

#[derive(Arbitrary, Debug)]
enum Hdr {
    Persistent(bool),
    Priority(u8),
    Expires(i32),
    PrefetchCount(u16),
    Durable(bool),
    SubscriptionName(u8),
    ReplyTo(Dest),
    ContentType,
    Requeue(bool),
    MessageId(u8),
    Id(u8),
    Destination(Dest),
    Custom(Text, Text),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Text(Text),
    Bytes(Vec<u8>),
    Big(u16),
}

impl Dest {
    fn path(&self) -> String {
        match self {
            Dest::Topic(n) => format!("/topic/t.{}", n % 4),
            Dest::TopicStar => "/topic/t.*".into(),
            Dest::TopicHash => "/topic/#".into(),
            Dest::Queue(n) => format!("/queue/q{}", n % 4),
            Dest::DeadLetters => "/queue/dlq.q0".into(),
            Dest::TempQueue(n) => format!("/temp-queue/r{}", n % 2),
            Dest::User => "/user/fuzz/inbox".into(),
            Dest::UserSub => "/user/inbox".into(),
            Dest::ReplyQueue => "/reply-queue/s1.r0".into(),
            Dest::Durable => "/durable/fuzz/d0".into(),
            Dest::Unknown => "/exchange/x".into(),
            Dest::Empty => String::new(),
            // Topics only: arbitrary queue names would create queues without
            // bound over millions of inputs.
            Dest::TopicText(t) => format!("/topic/{}", t.0),
        }
    }
}

impl Hdr {
    fn pair(&self) -> (String, String) {
        match self {
            Hdr::Persistent(b) => ("persistent".into(), b.to_string()),
            Hdr::Priority(p) => ("priority".into(), (p % 12).to_string()),
            Hdr::Expires(e) => ("expires".into(), e.to_string()),
            Hdr::PrefetchCount(n) => ("prefetch-count".into(), n.to_string()),
            Hdr::Durable(b) => ("durable".into(), b.to_string()),
            Hdr::SubscriptionName(n) => ("activemq.subscriptionName".into(), format!("d{}", n % 3)),
            Hdr::ReplyTo(d) => ("reply-to".into(), d.path()),
            Hdr::ContentType => ("content-type".into(), "text/plain".into()),
            Hdr::Requeue(b) => ("requeue".into(), b.to_string()),
            Hdr::MessageId(n) => ("message-id".into(), n.to_string()),
            Hdr::Id(n) => ("id".into(), n.to_string()),
            Hdr::Destination(d) => ("destination".into(), d.path()),
            Hdr::Custom(n, v) => (n.0.clone(), v.0.clone()),
        }
    }
}

fn command_of(n: u8) -> Command {
    Command::ALL[usize::from(n) % Command::ALL.len()]
}

impl FrameOp {
    fn frame(&self) -> Frame {
        let mut f = match &self.command {
            Cmd::Send(d) => Frame::new(Command::Send).header("destination", d.path()),
            Cmd::Subscribe { id, dest, ack } => {
                let ack = match ack {
                    Ack::Auto => "auto".to_owned(),
                    Ack::Client => "client".to_owned(),
                    Ack::ClientIndividual => "client-individual".to_owned(),
                    Ack::Bogus(t) => t.0.clone(),
                };
                Frame::new(Command::Subscribe)
                    .header("id", format!("s{}", id % 8))
                    .header("destination", dest.path())
                    .header("ack", ack)
            }
            Cmd::Unsubscribe { id } => {
                Frame::new(Command::Unsubscribe).header("id", format!("s{}", id % 8))
            }
            // The broker numbers ack ids from 1 per session.
            Cmd::Ack { id } => Frame::new(Command::Ack).header("id", (id % 16).to_string()),
            Cmd::Nack { id } => Frame::new(Command::Nack).header("id", (id % 16).to_string()),
            Cmd::Begin => Frame::new(Command::Begin),
            Cmd::Commit => Frame::new(Command::Commit),
            Cmd::Abort => Frame::new(Command::Abort),
            Cmd::Disconnect => Frame::new(Command::Disconnect),
            Cmd::Connect => Frame::new(Command::Connect)
                .header("accept-version", "1.2")
                .header("host", "localhost"),
            Cmd::Any(n) => Frame::new(command_of(*n)),
        };
        if let Some(tx) = self.transaction {
            f = f.header("transaction", format!("tx{}", tx % 3));
        }
        if let Some(r) = self.receipt {
            f = f.header("receipt", format!("r{r}"));
        }
        for h in &self.headers {
            let (n, v) = h.pair();
            f = f.header(n, v);
        }
        f.body(match &self.body {
            Body::Empty => Vec::new(),
            Body::Text(t) => t.0.clone().into_bytes(),
            Body::Bytes(b) => b.clone(),
            Body::Big(n) => vec![b'x'; usize::from(*n) * 4],
        })
    }

    fn encode(&self, version: Version, out: &mut Vec<u8>) {
        let mut buf = BytesMut::new();
        encode_frame(&self.frame(), version, &mut buf);
        out.extend_from_slice(&buf);
    }
}

impl Input {
    /// The bytes this input writes to the session.
    pub fn wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let version = match &self.hello {
            Hello::Connect12 | Hello::Stomp | Hello::Nothing => Version::V1_2,
            Hello::Connect11 => Version::V1_1,
            Hello::Connect10 => Version::V1_0,
            Hello::Connect { accept, .. } => ["1.2", "1.1", "1.0"]
                .into_iter()
                .find(|v| accept.0.contains(v))
                .and_then(Version::parse)
                .unwrap_or(Version::V1_2),
        };
        let hello = match &self.hello {
            Hello::Connect12 => Some(("CONNECT", "1.2".to_owned(), None, None, None)),
            Hello::Connect11 => Some(("CONNECT", "1.1".to_owned(), None, None, None)),
            Hello::Connect10 => Some(("CONNECT", "1.0".to_owned(), None, None, None)),
            Hello::Stomp => Some(("STOMP", "1.0,1.1,1.2".to_owned(), None, None, None)),
            Hello::Connect {
                accept,
                heart_beat,
                login,
                client_id,
            } => Some(("CONNECT", accept.0.clone(), *heart_beat, *login, *client_id)),
            Hello::Nothing => None,
        };
        if let Some((command, accept, heart_beat, login, client_id)) = hello {
            let mut f = Frame::new(if command == "STOMP" {
                Command::Stomp
            } else {
                Command::Connect
            })
            .header("accept-version", accept)
            .header("host", "localhost");
            if let Some((cx, cy)) = heart_beat {
                f = f.header("heart-beat", format!("{cx},{cy}"));
            }
            f = f.header("login", format!("fuzz{}", login.unwrap_or(0) % 3));
            if let Some(id) = client_id {
                f = f.header("client-id", format!("c{}", id % 3));
            }
            let mut buf = BytesMut::new();
            encode_frame(&f, Version::V1_2, &mut buf);
            out.extend_from_slice(&buf);
        }
        for op in &self.ops {
            match op {
                Op::Frame(f) | Op::Frame2(f) | Op::Frame3(f) => f.encode(version, &mut out),
                Op::HeartBeat => out.push(b'\n'),
                Op::Raw(bytes) => out.extend_from_slice(bytes),
                Op::Mangled { frame, mangle } => {
                    let mut one = Vec::new();
                    frame.encode(version, &mut one);
                    match mangle {
                        Mangle::Truncate(n) => one.truncate(usize::from(*n) % (one.len() + 1)),
                        Mangle::Flip { at, byte } => {
                            let at = usize::from(*at) % one.len().max(1);
                            if let Some(b) = one.get_mut(at) {
                                *b = *byte;
                            }
                        }
                        Mangle::LieLength(n) => {
                            if let Some(eol) = one.iter().position(|&b| b == b'\n') {
                                let header = format!("content-length:{n}\n");
                                one.splice(eol + 1..eol + 1, header.into_bytes());
                            }
                        }
                        Mangle::DropNul => {
                            one.pop();
                        }
                    }
                    out.extend_from_slice(&one);
                }
            }
        }
        if let End::Disconnect { receipt } = self.end {
            out.extend_from_slice(if receipt {
                b"DISCONNECT\nreceipt:bye\n\n\0"
            } else {
                b"DISCONNECT\n\n\0"
            });
        }
        out
    }
}

/// Runs one input; panics on a hang.
pub fn run(input: &Input) {
    let wire = input.wire();
    if let Some(path) = std::env::var_os("STOMPEDE_FUZZ_DUMP") {
        std::fs::write(path, &wire).expect("write STOMPEDE_FUZZ_DUMP");
    }
    let chunk = match input.chunk {
        0 => wire.len().max(1),
        n => usize::from(n),
    };
    replay(&wire, chunk);
}

/// Writes `wire` to a new in-process session in pieces of `chunk` bytes,
/// closes the write side, and reads until the session closes.
pub fn replay(wire: &[u8], chunk: usize) {
    let f = fuzz();
    f.rt.block_on(async {
        let pipe = f.broker.connect_in_process();
        let (mut rd, mut wr) = tokio::io::split(pipe);
        let write = async {
            for piece in wire.chunks(chunk.max(1)) {
                if wr.write_all(piece).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = wr.shutdown().await;
        };
        let read = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        };
        if tokio::time::timeout(SESSION_END, async { tokio::join!(write, read) })
            .await
            .is_err()
        {
            panic!(
                "the session did not end within {SESSION_END:?} after its input did ({} bytes)",
                wire.len()
            );
        }
    });
}
