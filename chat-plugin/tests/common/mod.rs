//! Test helpers: a broker with the chat plugin on loopback port 0, and a
//! raw STOMP peer (from the broker's own tests) with chat shortcuts.
#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;
use stompede::codec::{Command, Frame, Item, StompCodec, Version};
use stompede::config::{Config, StoreKind};
use stompede::{Broker, BrokerHandle};
use stompede_chat::{ChatConfig, ChatPlugin};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long a test waits for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker configuration on loopback port 0 with only the TCP listener.
pub fn config() -> Config {
    let mut config = Config::default();
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    config
}

/// A broker with an in-memory store and the chat plugin.
pub async fn start_with(chat: ChatConfig) -> BrokerHandle {
    start_plugin(ChatPlugin::new(chat)).await
}

/// A broker with an in-memory store and `plugin`.
pub async fn start_plugin(plugin: ChatPlugin) -> BrokerHandle {
    Broker::builder()
        .config(config())
        .store_in_memory()
        .plugin(plugin)
        .build()
        .start()
        .await
        .expect("broker starts")
}

/// The default chat configuration without rate limits (tests post in
/// bursts).
pub fn unlimited() -> ChatConfig {
    ChatConfig {
        post_rate: 0,
        typing_rate: 0,
        read_rate: 0,
        ..ChatConfig::default()
    }
}

/// A broker with the default chat configuration (no rate limits), in
/// memory.
pub async fn start() -> BrokerHandle {
    start_with(unlimited()).await
}

/// A broker storing in a sled database under `dir`. A broker that was
/// just shut down on the same directory releases it asynchronously, so
/// starting is retried for a while.
pub async fn start_on_disk(dir: &Path) -> BrokerHandle {
    let mut config = config();
    config.store.kind = StoreKind::Sled;
    config.store.path = dir.to_string_lossy().into_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let started = Broker::builder()
            .config(config.clone())
            .plugin(ChatPlugin::new(unlimited()))
            .build()
            .start()
            .await;
        match started {
            Ok(broker) => return broker,
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("retrying start: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("broker does not start: {e}"),
        }
    }
}

/// A fresh scratch directory.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "stompede-chat-{name}-{}-{stamp}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A STOMP peer over TCP.
pub struct Peer {
    pub framed: Framed<TcpStream, StompCodec>,
    backlog: VecDeque<Frame>,
    next_receipt: u64,
}

/// Builds a frame from a command and header pairs.
pub fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(command);
    for (n, v) in headers {
        f = f.header(n.to_string(), v.to_string());
    }
    f
}

/// The body as text.
pub fn body(f: &Frame) -> &str {
    std::str::from_utf8(&f.body).expect("utf-8 body")
}

/// The body as JSON.
pub fn json(f: &Frame) -> serde_json::Value {
    serde_json::from_slice(&f.body).expect("JSON body")
}

impl Peer {
    /// Connects as `login` (dev-mode auth: the login is the user).
    pub async fn connect(broker: &BrokerHandle, login: &str) -> Peer {
        let stream = TcpStream::connect(broker.tcp_addr().expect("tcp listener"))
            .await
            .expect("tcp connect");
        let mut p = Peer {
            framed: Framed::new(stream, StompCodec::default()),
            backlog: VecDeque::new(),
            next_receipt: 0,
        };
        p.send(frame(
            Command::Connect,
            &[
                ("accept-version", "1.2"),
                ("host", "localhost"),
                ("login", login),
            ],
        ))
        .await;
        let connected = p.expect(Command::Connected).await;
        if let Some(v) = connected.get("version").and_then(Version::parse) {
            p.framed.codec_mut().set_version(v);
        }
        p
    }

    /// Connects without a login (anonymous).
    pub async fn anonymous(broker: &BrokerHandle) -> Peer {
        let stream = TcpStream::connect(broker.tcp_addr().expect("tcp listener"))
            .await
            .expect("tcp connect");
        let mut p = Peer {
            framed: Framed::new(stream, StompCodec::default()),
            backlog: VecDeque::new(),
            next_receipt: 0,
        };
        p.send(frame(
            Command::Connect,
            &[("accept-version", "1.2"), ("host", "localhost")],
        ))
        .await;
        p.expect(Command::Connected).await;
        p
    }

    pub async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.expect("send frame");
    }

    /// `None` on timeout, `Some(None)` on close.
    pub async fn try_frame(&mut self, wait: Duration) -> Option<Option<Frame>> {
        if let Some(f) = self.backlog.pop_front() {
            return Some(Some(f));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.framed.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => return Some(None),
                Ok(Some(Ok(Item::HeartBeat))) => continue,
                Ok(Some(Ok(Item::Frame(f)))) => return Some(Some(f)),
            }
        }
    }

    /// The next frame; panics after [`WAIT`].
    pub async fn frame(&mut self) -> Frame {
        self.try_frame(WAIT)
            .await
            .expect("a frame within the wait")
            .expect("connection still open")
    }

    /// The next frame, which must be `command`.
    pub async fn expect(&mut self, command: Command) -> Frame {
        let f = self.frame().await;
        assert_eq!(f.command, command, "unexpected frame: {f:?}");
        f
    }

    /// The next MESSAGE whose `x-event` is `event`, skipping others.
    pub async fn expect_event(&mut self, event: &str) -> Frame {
        loop {
            let f = self.expect(Command::Message).await;
            if f.get("x-event") == Some(event) {
                return f;
            }
        }
    }

    /// The next reply MESSAGE to `command` (`x-event:reply`), skipping others.
    pub async fn expect_reply(&mut self, command: &str) -> Frame {
        loop {
            let f = self.expect_event("reply").await;
            if f.get("x-command") == Some(command) {
                return f;
            }
        }
    }

    /// Expects no MESSAGE on subscription `sub` for `wait` (others are
    /// skipped).
    pub async fn expect_silence_on(&mut self, sub: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_frame(left).await {
                None => return,
                Some(Some(f)) if f.get("subscription") != Some(sub) => continue,
                Some(f) => panic!("expected silence on {sub}, got {f:?}"),
            }
        }
    }

    /// Expects no frame for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(f) = self.try_frame(wait).await {
            panic!("expected silence, got {f:?}");
        }
    }

    /// Sends `frame` with a fresh receipt id and returns that RECEIPT;
    /// frames that arrive first are kept for later.
    pub async fn request(&mut self, frame: Frame) -> Frame {
        self.next_receipt += 1;
        let id = format!("rc-{}", self.next_receipt);
        self.send(frame.header("receipt", id.clone())).await;
        let mut kept = VecDeque::new();
        loop {
            let f = self
                .try_frame(WAIT)
                .await
                .expect("receipt within the wait")
                .expect("open");
            if f.command == Command::Receipt && f.get("receipt-id") == Some(&*id) {
                break self.keep(kept, f);
            }
            assert_ne!(f.command, Command::Error, "ERROR: {f:?}");
            kept.push_back(f);
        }
    }

    fn keep(&mut self, mut kept: VecDeque<Frame>, receipt: Frame) -> Frame {
        kept.append(&mut self.backlog);
        self.backlog = kept;
        receipt
    }

    /// SEND to `destination` with headers, confirmed by its RECEIPT.
    pub async fn command(&mut self, destination: &str, headers: &[(&str, &str)]) -> Frame {
        let mut f = frame(Command::Send, &[("destination", destination)]);
        for (n, v) in headers {
            f = f.header(n.to_string(), v.to_string());
        }
        self.request(f).await
    }

    /// Posts `text` to a room with a client message id; the RECEIPT.
    pub async fn post(&mut self, room: &str, text: &str, client_id: &str) -> Frame {
        let f = frame(
            Command::Send,
            &[
                ("destination", &format!("/room/{room}")),
                ("x-client-msg-id", client_id),
                ("content-type", "text/plain"),
            ],
        )
        .body(text.to_owned());
        self.request(f).await
    }

    /// Subscribes to the inbox.
    pub async fn inbox(&mut self) {
        self.request(frame(
            Command::Subscribe,
            &[("id", "inbox"), ("destination", "/user/queue/chat")],
        ))
        .await;
    }

    /// Subscribes to a room timeline with extra headers; confirmed by a
    /// RECEIPT (the replay follows it).
    pub async fn join_timeline(&mut self, id: &str, room: &str, headers: &[(&str, &str)]) {
        let mut f = frame(
            Command::Subscribe,
            &[("id", id), ("destination", &format!("/room/{room}"))],
        );
        for (n, v) in headers {
            f = f.header(n.to_string(), v.to_string());
        }
        self.request(f).await;
    }

    /// Reads the replay up to its marker: (replayed MESSAGEs, marker).
    pub async fn replay(&mut self) -> (Vec<Frame>, Frame) {
        let mut replayed = Vec::new();
        loop {
            let f = self.expect(Command::Message).await;
            if f.get("x-event") == Some("replay-end") {
                return (replayed, f);
            }
            replayed.push(f);
        }
    }

    /// Creates a group room with `invite` (comma list); its id.
    pub async fn create_group(&mut self, room: &str, invite: &str, public: bool) -> String {
        let r = self
            .command(
                "/rooms/create",
                &[
                    ("x-room-id", room),
                    ("x-name", room),
                    ("x-invite", invite),
                    ("x-public", if public { "true" } else { "false" }),
                ],
            )
            .await;
        assert_eq!(r.get("x-error"), None, "create failed: {r:?}");
        room.to_owned()
    }
}

/// The `x-seq` of a frame as a number.
pub fn seq(f: &Frame) -> u64 {
    f.get("x-seq").and_then(|s| s.parse().ok()).expect("x-seq")
}
