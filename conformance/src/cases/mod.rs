//! The cases, grouped by section of the STOMP 1.2 specification, and the
//! small context every case gets.

use std::future::Future;
use std::hash::{BuildHasher as _, Hasher as _};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _, Result};
use stompede_codec::{Command, Frame, Version};

use crate::client::{describe, frame, Conn, Endpoint};
use crate::SuiteConfig;

mod ack;
mod connect;
mod errors;
mod heartbeat;
mod message;
mod queue;
mod receipt;
mod subscribe;
mod transaction;
mod wire;

/// What sort of case this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// Behaviour the specification requires (or strongly recommends).
    Core,
    /// Behaviour the specification leaves to the broker; names start with
    /// `ext/`.
    Extension,
    /// Takes long (tens of seconds); run only with `--slow`.
    Slow,
}

/// A case's name and what it checks.
#[derive(Debug, Clone, Copy)]
pub struct CaseInfo {
    /// `section/case`.
    pub name: &'static str,
    /// Which group it is in.
    pub kind: CaseKind,
    /// One sentence on what is checked.
    pub summary: &'static str,
}

type CaseFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

pub(crate) struct Case {
    pub(crate) info: CaseInfo,
    pub(crate) run: fn(Ctx) -> CaseFuture,
}

macro_rules! case {
    ($name:literal, $kind:ident, $summary:literal, $f:path) => {
        $crate::cases::Case {
            info: $crate::cases::CaseInfo {
                name: $name,
                kind: $crate::cases::CaseKind::$kind,
                summary: $summary,
            },
            run: |ctx| Box::pin($f(ctx)),
        }
    };
}
pub(crate) use case;

pub(crate) fn all() -> Vec<Case> {
    let mut out = Vec::new();
    out.extend(connect::cases());
    out.extend(heartbeat::cases());
    out.extend(message::cases());
    out.extend(queue::cases());
    out.extend(subscribe::cases());
    out.extend(ack::cases());
    out.extend(transaction::cases());
    out.extend(receipt::cases());
    out.extend(errors::cases());
    out.extend(wire::cases());
    out
}

/// Every case of the suite, in run order.
pub fn case_list() -> Vec<CaseInfo> {
    all().into_iter().map(|c| c.info).collect()
}

/// Returns early from a case with a skip.
macro_rules! skip {
    ($($arg:tt)*) => {
        return Err($crate::Skip(format!($($arg)*)).into())
    };
}
pub(crate) use skip;

/// Fails the case unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            anyhow::bail!($($arg)*);
        }
    };
}
pub(crate) use ensure;

/// What a case gets: the configuration, the endpoint and a unique suffix.
#[derive(Clone)]
pub(crate) struct Ctx {
    cfg: Arc<SuiteConfig>,
    endpoint: Arc<Endpoint>,
    suffix: String,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_suffix() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
}

impl Ctx {
    pub(crate) fn new(cfg: Arc<SuiteConfig>, endpoint: Arc<Endpoint>) -> Ctx {
        Ctx {
            cfg,
            endpoint,
            suffix: random_suffix(),
        }
    }

    /// How long to listen before concluding that nothing comes.
    pub(crate) fn quiet(&self) -> Duration {
        self.cfg.quiet
    }

    /// Whether slow cases were asked for (`--slow`).
    pub(crate) fn slow(&self) -> bool {
        self.cfg.slow
    }

    /// A topic (fan-out) destination unique to this case.
    pub(crate) fn topic(&self, name: &str) -> String {
        format!("{}sc-{name}-{}", self.cfg.topic_prefix, self.suffix)
    }

    /// A queue (point-to-point) destination unique to this case.
    pub(crate) fn queue(&self, name: &str) -> String {
        format!("{}sc-{name}-{}", self.cfg.queue_prefix, self.suffix)
    }

    /// A string unique to this case (for ids, bodies, ...).
    pub(crate) fn unique(&self, name: &str) -> String {
        format!("{name}-{}", self.suffix)
    }

    /// Opens the transport without sending anything.
    pub(crate) async fn open(&self) -> Result<Conn> {
        Conn::open(&self.endpoint, self.cfg.timeout).await
    }

    /// The `host` header value.
    pub(crate) fn host(&self) -> String {
        self.cfg
            .host
            .clone()
            .unwrap_or_else(|| self.endpoint.host().to_owned())
    }

    /// A CONNECT (or STOMP) frame with `host`, credentials, the given
    /// `accept-version` (none if `None`) and `extra` headers.
    pub(crate) fn connect_frame(
        &self,
        command: &str,
        accept_version: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Vec<u8> {
        let host = self.host();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(v) = accept_version {
            headers.push(("accept-version", v));
        }
        headers.push(("host", &host));
        if let Some(login) = &self.cfg.login {
            headers.push(("login", login));
        }
        if let Some(passcode) = &self.cfg.passcode {
            headers.push(("passcode", passcode));
        }
        headers.extend_from_slice(extra);
        frame(command, &headers, "")
    }

    /// Opens a connection, sends `connect` and expects CONNECTED; the
    /// connection's codec is then set to the version the server chose.
    pub(crate) async fn handshake(&self, connect: &[u8]) -> Result<(Conn, Frame)> {
        let mut conn = self.open().await?;
        conn.send(connect).await?;
        let connected = conn.expect(Command::Connected).await?;
        let version = match connected.get("version") {
            None => Version::V1_0,
            Some(v) => match Version::parse(v) {
                Some(v) => v,
                None => bail!("CONNECTED has an unknown version {v:?}"),
            },
        };
        conn.set_version(version);
        Ok((conn, connected))
    }

    /// Connects asking for exactly `version` (1.0: no `accept-version`
    /// header at all, as a 1.0 client would) and checks the server agreed.
    pub(crate) async fn connect(&self, version: Version) -> Result<Conn> {
        let accept = match version {
            Version::V1_0 => None,
            v => Some(v.as_str()),
        };
        let (conn, connected) = self
            .handshake(&self.connect_frame("CONNECT", accept, &[]))
            .await
            .with_context(|| format!("connecting with STOMP {version}"))?;
        if conn.version != version {
            bail!(
                "asked for STOMP {version}, the server chose {} ({})",
                conn.version,
                describe(&connected)
            );
        }
        Ok(conn)
    }

    /// Connects with STOMP 1.2.
    pub(crate) async fn connect12(&self) -> Result<Conn> {
        self.connect(Version::V1_2).await
    }
}

/// The bodies of `frames`, as text, sorted.
pub(crate) fn bodies(frames: &[Frame]) -> Vec<String> {
    let mut out: Vec<String> = frames
        .iter()
        .map(|f| String::from_utf8_lossy(&f.body).into_owned())
        .collect();
    out.sort();
    out
}

/// The body of `frame` as text.
pub(crate) fn body(frame: &Frame) -> String {
    String::from_utf8_lossy(&frame.body).into_owned()
}
