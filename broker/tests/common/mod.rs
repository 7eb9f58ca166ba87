//! Test helpers: a broker on port 0 and a raw STOMP peer.
#![allow(dead_code)]

pub mod tansu;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use stompede::codec::{Command, Frame, Item, StompCodec, Version};
use stompede::config::Config;
use stompede::{Broker, BrokerHandle};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How long a test waits for a frame that must come.
pub const WAIT: Duration = Duration::from_secs(5);

/// Starts a broker with `config`, both listeners on loopback port 0.
pub async fn start_with(mut config: Config) -> BrokerHandle {
    config.listeners.tcp = "127.0.0.1:0".into();
    config.listeners.websocket = "127.0.0.1:0".into();
    config.listeners.admin = String::new();
    launch(config).await
}

/// Starts a broker exactly as `config` says, with an in-memory store.
pub async fn launch(config: Config) -> BrokerHandle {
    Broker::builder()
        .config(config)
        .store_in_memory()
        .build()
        .start()
        .await
        .expect("broker starts")
}

/// Starts a broker without listeners (reach it with
/// `connect_in_process`), with `adjust` applied to the default config.
pub async fn start_in_process(adjust: impl FnOnce(&mut Config)) -> BrokerHandle {
    let mut config = Config::default();
    config.listeners.tcp = String::new();
    config.listeners.websocket = String::new();
    config.listeners.admin = String::new();
    adjust(&mut config);
    launch(config).await
}

/// Starts a broker with the default configuration.
pub async fn start() -> BrokerHandle {
    start_with(Config::default()).await
}

/// A STOMP peer speaking raw frames over any byte stream.
pub struct Peer<S> {
    pub framed: Framed<S, StompCodec>,
    /// MESSAGEs that arrived while [`Peer::request`] waited for its RECEIPT.
    backlog: std::collections::VecDeque<Frame>,
}

impl Peer<TcpStream> {
    /// Opens a TCP connection (not yet CONNECTed).
    pub async fn tcp(broker: &BrokerHandle) -> Self {
        let stream = TcpStream::connect(broker.tcp_addr().expect("tcp listener"))
            .await
            .expect("tcp connect");
        Peer::new(stream)
    }

    /// Opens a TCP connection and CONNECTs with STOMP 1.2.
    pub async fn connected(broker: &BrokerHandle) -> Self {
        let mut p = Peer::tcp(broker).await;
        p.connect("1.2", None).await;
        p
    }

    /// Opens a TCP connection and CONNECTs as `login`.
    pub async fn connected_as(broker: &BrokerHandle, login: &str) -> Self {
        let mut p = Peer::tcp(broker).await;
        p.connect("1.2", Some(login)).await;
        p
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub fn new(stream: S) -> Self {
        Peer {
            framed: Framed::new(stream, StompCodec::default()),
            backlog: std::collections::VecDeque::new(),
        }
    }

    /// Writes bytes exactly as given.
    pub async fn raw(&mut self, bytes: &[u8]) {
        let s = self.framed.get_mut();
        s.write_all(bytes).await.expect("write");
        s.flush().await.expect("flush");
    }

    /// Sends a frame with the codec.
    pub async fn send(&mut self, frame: Frame) {
        self.framed.send(frame).await.expect("send frame");
    }

    /// CONNECT with `accept-version` and optional login; expects CONNECTED.
    pub async fn connect(&mut self, accept: &str, login: Option<&str>) -> Frame {
        let mut f = Frame::new(Command::Connect)
            .header("accept-version", accept.to_owned())
            .header("host", "localhost");
        if let Some(login) = login {
            f = f.header("login", login.to_owned());
        }
        self.send(f).await;
        let connected = self.expect(Command::Connected).await;
        if let Some(v) = connected.get("version").and_then(Version::parse) {
            self.framed.codec_mut().set_version(v);
        }
        connected
    }

    /// The next frame (heart-beats skipped); panics after [`WAIT`].
    pub async fn frame(&mut self) -> Frame {
        self.try_frame(WAIT)
            .await
            .expect("a frame within the wait")
            .expect("connection still open")
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

    /// The next frame, which must be `command`.
    pub async fn expect(&mut self, command: Command) -> Frame {
        let f = self.frame().await;
        assert_eq!(f.command, command, "unexpected frame: {f:?}");
        f
    }

    /// Expects ERROR, then the connection to close.
    pub async fn expect_error_and_close(&mut self) -> Frame {
        let e = self.expect(Command::Error).await;
        self.expect_closed().await;
        e
    }

    /// Expects the connection to close (no further frame).
    pub async fn expect_closed(&mut self) {
        match self.try_frame(WAIT).await {
            Some(None) => {}
            Some(Some(f)) => panic!("expected close, got {f:?}"),
            None => panic!("connection still open"),
        }
    }

    /// Expects no frame for `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Some(f) = self.try_frame(wait).await {
            panic!("expected silence, got {f:?}");
        }
    }

    /// Sends `frame` with `receipt:r` and waits for that RECEIPT; MESSAGEs
    /// that arrive first are kept for the next [`Peer::frame`].
    pub async fn request(&mut self, frame: Frame) {
        self.send(frame.header("receipt", "r")).await;
        let mut kept = std::collections::VecDeque::new();
        loop {
            let f = self.frame().await;
            match f.command {
                Command::Message => kept.push_back(f),
                Command::Receipt => {
                    assert_eq!(f.get("receipt-id"), Some("r"));
                    break;
                }
                _ => panic!("expected RECEIPT, got {f:?}"),
            }
        }
        kept.append(&mut self.backlog);
        self.backlog = kept;
    }

    /// SUBSCRIBE (confirmed by a receipt).
    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) {
        self.request(
            Frame::new(Command::Subscribe)
                .header("id", id.to_owned())
                .header("destination", destination.to_owned())
                .header("ack", ack.to_owned()),
        )
        .await;
    }

    /// SEND (confirmed by a receipt).
    pub async fn publish(&mut self, destination: &str, body: &str) {
        self.request(
            Frame::new(Command::Send)
                .header("destination", destination.to_owned())
                .body(body.to_owned()),
        )
        .await;
    }

    /// SEND with one extra header (confirmed by a receipt).
    pub async fn publish_with_header(&mut self, destination: &str, name: &str, value: &str) {
        self.request(
            Frame::new(Command::Send)
                .header("destination", destination.to_owned())
                .header(name.to_owned(), value.to_owned()),
        )
        .await;
    }

    /// The next MESSAGE, asserting its body.
    pub async fn expect_message(&mut self, body: &str) -> Frame {
        let m = self.expect(Command::Message).await;
        assert_eq!(std::str::from_utf8(&m.body).ok(), Some(body), "frame {m:?}");
        m
    }
}

/// Builds a frame from a command and header pairs.
pub fn frame(command: Command, headers: &[(&str, &str)]) -> Frame {
    let mut f = Frame::new(command);
    for (n, v) in headers {
        f = f.header(n.to_string(), v.to_string());
    }
    f
}

// ---------------------------------------------------------------------------
// The real `stompede` binary, for tests that measure the process (RSS) or
// must see it survive. Appended for `tests/hostile.rs`.

/// A loopback port that was free a moment ago (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The resident set size of process `pid` in KiB (`VmRSS` in
/// `/proc/<pid>/status`), `None` once it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A `stompede` process (`--memory-store --admin-listen=`) on free loopback
/// ports, configured by a TOML text written to a temporary file; killed
/// and reaped on drop.
pub struct BrokerProcess {
    child: std::process::Child,
    /// The STOMP-over-TCP address.
    pub tcp: std::net::SocketAddr,
    /// The WebSocket address (`ws://{ws}/ws`).
    pub ws: std::net::SocketAddr,
    /// The admin HTTP address, if [`BrokerProcess::spawn_with_admin`].
    pub admin: Option<std::net::SocketAddr>,
    dir: std::path::PathBuf,
}

impl BrokerProcess {
    /// Starts the binary with `config_toml` and waits until both listeners
    /// accept connections (up to 20 s; a port lost to a race is retried).
    pub async fn spawn(config_toml: &str) -> BrokerProcess {
        BrokerProcess::spawn_inner(config_toml, false).await
    }

    /// Like [`BrokerProcess::spawn`], with the admin listener on a free
    /// loopback port too (probes, metrics).
    pub async fn spawn_with_admin(config_toml: &str) -> BrokerProcess {
        BrokerProcess::spawn_inner(config_toml, true).await
    }

    async fn spawn_inner(config_toml: &str, with_admin: bool) -> BrokerProcess {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("stompede-proc-{}-{stamp}", std::process::id()));
        let config = dir.join("config.toml");
        for _attempt in 0..3 {
            // (Again on a retry: the failed attempt's drop removed it.)
            std::fs::create_dir_all(&dir).expect("scratch dir");
            std::fs::write(&config, config_toml).expect("write config");
            let tcp: std::net::SocketAddr =
                format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let ws: std::net::SocketAddr =
                format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let admin: Option<std::net::SocketAddr> =
                with_admin.then(|| format!("127.0.0.1:{}", free_port()).parse().expect("addr"));
            let admin_arg = admin.map(|a| a.to_string()).unwrap_or_default();
            let log = std::fs::File::create(dir.join("broker.log")).expect("log file");
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stompede"));
            for (key, _) in std::env::vars() {
                if key.starts_with("STOMPEDE_") {
                    cmd.env_remove(key);
                }
            }
            let child = cmd
                .arg("--config")
                .arg(&config)
                .arg(format!("--tcp-listen={tcp}"))
                .arg(format!("--ws-listen={ws}"))
                .arg(format!("--admin-listen={admin_arg}"))
                .arg("--memory-store")
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("spawn stompede");
            let mut process = BrokerProcess {
                child,
                tcp,
                ws,
                admin,
                dir: dir.clone(),
            };
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::time::Instant::now() < deadline && process.is_alive() {
                if TcpStream::connect(tcp).await.is_ok() && TcpStream::connect(ws).await.is_ok() {
                    // Another process may hold a port we picked: ours then
                    // exits at once on its failed bind.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if process.is_alive() {
                        return process;
                    }
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!("stompede did not start:\n{}", process.log());
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        panic!("stompede did not start on free ports");
    }

    /// Ends the process with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM) and waits up to 15 s for it.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its resident set size in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
