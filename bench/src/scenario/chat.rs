//! The chat scenarios, against the chat plugin's contract over plain STOMP
//! (`chat-plugin/README.md`):
//!
//! * `chat-history`: a room with N (1,000,000) stored messages; one
//!   client asks for history pages of 50 (`SEND /room/{id}/history` with
//!   `x-before-seq` at random positions, answered to `/temp-queue/h`), one
//!   after the other; latency from writing the request to reading the
//!   page's last event (and its `history-end`).
//! * `chat-resume`: a member goes away, 10,000 messages are posted, the
//!   member comes back and SUBSCRIBEs with `x-since-seq` + `x-epoch`;
//!   time from the SUBSCRIBE to the `replay-end` marker, all 10,000
//!   replayed in order before it.
//! * `chat-fanout`: 1,000 members, each its own user and connection,
//!   subscribed to one room; publishers post as fast as their RECEIPTs and
//!   an end-to-end window allow; deliveries (MESSAGEs received by the
//!   members) per second.
//!
//! With `--start-broker` each scenario starts its own broker on an on-disk
//! store (the chat plugin stores in sled under the data directory) with a
//! `[chat]` section that turns the per-user rate limits off. Filling a room
//! is done with pipelined posts from several connections; chat-history
//! keeps the filled data directory under the cache directory, keyed by
//! [`FILL_VERSION`], the size and the broker's version, and reuses it.

use super::recovery::{start as start_broker, stop as stop_broker};
use super::{Ctx, Progress};
use crate::body::{parse_receipt_seq, parse_stamp, SendTemplate};
use crate::broker::{dir_bytes, store_config, BrokerOpts, ManagedBroker, ScratchDir};
use crate::check::SeqCheck;
use crate::conn::{disconnect, open_as, Conn, Endpoints, FrameReader, OutBatch, TransportKind};
use crate::report::{fmt_num, ChatReport, LatencyStats, Report};
use crate::scan::{find_header, Cmd, FrameView};
use anyhow::{anyhow, bail, Context, Result};
use futures_util::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Bumped whenever the way a cached room is filled changes (the cache key
/// also has the room size, the body size and the broker's version).
pub const FILL_VERSION: u32 = 1;

/// Unconfirmed posts all connections of a room together stay below
/// (`[chat] room_queue` is 4096 by default: a post beyond it is refused).
const ROOM_BUDGET: u64 = 3000;

/// The configuration of a broker started for a chat scenario: the store
/// policy, and no per-user rate limits.
pub fn chat_config(ctx: &Ctx) -> String {
    let s = &ctx.settings;
    format!(
        "{}\n[chat]\npost_rate = 0\ntyping_rate = 0\nread_rate = 0\n",
        store_config(s.fsync.as_str(), s.fsync_interval_ms)
    )
}

/// A header of `v` as text ("" if absent).
fn text(v: Option<&[u8]>) -> String {
    String::from_utf8_lossy(v.unwrap_or_default()).into_owned()
}

/// A header of `v` as a number.
fn number(v: &FrameView<'_>, name: &str) -> Result<u64> {
    let raw = v
        .header(name.as_bytes())
        .ok_or_else(|| anyhow!("no {name} header on {}", v.describe()))?;
    std::str::from_utf8(raw)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| anyhow!("bad {name} header {:?}", String::from_utf8_lossy(raw)))
}

/// A broker (started by this tool or not) and the context pointing at it.
struct Target {
    ctx: Ctx,
    broker: Option<ManagedBroker>,
}

impl Target {
    /// Starts a broker on `data_dir` with `config` when `--start-broker`
    /// was given; otherwise uses the broker of `ctx`.
    async fn start(ctx: &Ctx, data_dir: &Path, config: &Path) -> Result<Target> {
        let Some(binary) = ctx.broker_binary.clone() else {
            return Ok(Target {
                ctx: ctx.clone(),
                broker: None,
            });
        };
        let opts = BrokerOpts {
            data_dir: Some(data_dir.to_owned()),
            config: Some(config.to_owned()),
            start_timeout: Duration::from_secs(120),
            ..BrokerOpts::default()
        };
        let broker = start_broker(binary, ctx.run_id.clone(), opts).await?;
        let mut c = ctx.clone();
        c.endpoints = Endpoints::parse(&broker.tcp_url, &broker.ws_url)?;
        c.broker_pid = Some(broker.pid);
        Ok(Target {
            ctx: c,
            broker: Some(broker),
        })
    }

    /// Stops the broker (if started); problems go to `report`.
    async fn stop(self, report: &mut Report) -> Result<()> {
        if let Some(mut b) = self.broker {
            if let Err(e) = b.check_alive() {
                report.problem(format!("{e:#}"));
                return Ok(());
            }
            report.broker_rss_kib = crate::procfs::rss_kib(b.pid).ok();
            let (_, clean, _) = stop_broker(b).await?;
            if !clean {
                report.problem("broker did not exit within 10 s of SIGTERM");
            }
        }
        Ok(())
    }
}

/// Opens a connection for `user`.
async fn connect(ctx: &Ctx, transport: TransportKind, user: &str) -> Result<Conn> {
    open_as(&ctx.endpoints, transport, &ctx.conn_opts(), Some(user))
        .await
        .with_context(|| format!("connect as {user}"))
}

/// Sends `frame` (which asks for receipt `id`) and reads until that
/// RECEIPT; a RECEIPT with `x-error` is a failure, MESSAGEs before it are
/// skipped. Returns the RECEIPT's header lines.
async fn command(conn: &mut Conn, frame: &str, id: &str, wait: Duration) -> Result<Vec<u8>> {
    let mut out = OutBatch::with_capacity(frame.len());
    out.push_frame(frame.as_bytes());
    conn.writer.send(&mut out).await?;
    let mut found: Option<Vec<u8>> = None;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        conn.reader.drain(|v| {
            if v.command == Cmd::Receipt && v.receipt_id == id.as_bytes() {
                if let Some(e) = v.header(b"x-error") {
                    bail!(
                        "{} refused: {}",
                        frame.lines().nth(1).unwrap_or(""),
                        String::from_utf8_lossy(e)
                    );
                }
                found = Some(v.headers.to_vec());
            } else if v.command != Cmd::Message {
                bail!("unexpected frame: {}", v.describe());
            }
            Ok(())
        })?;
        if let Some(h) = found {
            return Ok(h);
        }
        match tokio::time::timeout_at(deadline, conn.reader.fill()).await {
            Err(_) => bail!("no RECEIPT {id} within {wait:?}"),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!("connection closed while waiting for RECEIPT {id}"),
            Ok(Err(e)) => return Err(e),
        }
    }
}

/// What a timeline SUBSCRIBE's `replay-end` marker said.
#[derive(Debug, Clone, Default)]
struct ReplayEnd {
    epoch: String,
    head: u64,
    recovered: bool,
    replayed: u64,
}

impl ReplayEnd {
    fn parse(v: &FrameView<'_>) -> Result<ReplayEnd> {
        Ok(ReplayEnd {
            epoch: text(v.header(b"x-epoch")),
            head: number(v, "x-head-seq")?,
            recovered: v.header(b"x-recovered") == Some(b"true"),
            replayed: number(v, "x-replayed").unwrap_or(0),
        })
    }
}

/// Subscribes (`id`, receipt `id`) to the room's timeline with `extra`
/// headers and reads until both the RECEIPT and the `replay-end` marker
/// arrived; every replayed MESSAGE before the marker goes to `replayed`
/// with the time it was read.
async fn subscribe_timeline<F>(
    conn: &mut Conn,
    room: &str,
    id: &str,
    extra: &str,
    wait: Duration,
    mut replayed: F,
) -> Result<ReplayEnd>
where
    F: FnMut(&FrameView<'_>, Instant) -> Result<()>,
{
    let frame = format!(
        "SUBSCRIBE\nid:{id}\ndestination:/room/{room}\nack:auto\n{extra}receipt:{id}\n\n\0"
    );
    let mut out = OutBatch::with_capacity(frame.len());
    out.push_frame(frame.as_bytes());
    conn.writer.send(&mut out).await?;
    let (mut receipted, mut end) = (false, None);
    let deadline = tokio::time::Instant::now() + wait;
    while !receipted || end.is_none() {
        match tokio::time::timeout_at(deadline, conn.reader.fill()).await {
            Err(_) => bail!("SUBSCRIBE to /room/{room}: no RECEIPT and replay-end within {wait:?}"),
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!("connection closed while subscribing to /room/{room}"),
            Ok(Err(e)) => return Err(e),
        }
        let now = Instant::now();
        conn.reader.drain(|v| match v.command {
            Cmd::Receipt if v.receipt_id == id.as_bytes() => {
                if let Some(e) = v.header(b"x-error") {
                    bail!(
                        "SUBSCRIBE to /room/{room} refused: {}",
                        String::from_utf8_lossy(e)
                    );
                }
                receipted = true;
                Ok(())
            }
            Cmd::Message if v.subscription == id.as_bytes() => {
                match v.header(b"x-event") {
                    Some(b"replay-end") if end.is_none() => end = Some(ReplayEnd::parse(v)?),
                    Some(b"denied") => bail!(
                        "SUBSCRIBE to /room/{room} denied: {}",
                        text(v.header(b"x-error"))
                    ),
                    _ if end.is_none() => replayed(v, now)?,
                    // Live events after the marker: not ours to judge.
                    _ => {}
                }
                Ok(())
            }
            _ => bail!("unexpected frame while subscribing: {}", v.describe()),
        })?;
    }
    end.ok_or_else(|| anyhow!("no replay-end"))
}

/// UNSUBSCRIBE `id` and wait for its receipt (MESSAGEs before it are
/// skipped).
async fn unsubscribe(conn: &mut Conn, id: &str, wait: Duration) -> Result<()> {
    command(
        conn,
        &format!("UNSUBSCRIBE\nid:{id}\nreceipt:un-{id}\n\n\0"),
        &format!("un-{id}"),
        wait,
    )
    .await
    .map(|_| ())
}

/// The room's epoch and head, from a SUBSCRIBE without replay.
async fn probe(conn: &mut Conn, room: &str, wait: Duration) -> Result<ReplayEnd> {
    let end = subscribe_timeline(conn, room, "probe", "", wait, |_, _| Ok(())).await?;
    unsubscribe(conn, "probe", wait).await?;
    Ok(end)
}

/// Creates public room `room` (the caller becomes its owner).
async fn create_room(conn: &mut Conn, room: &str, wait: Duration) -> Result<()> {
    command(
        conn,
        &format!(
            "SEND\ndestination:/rooms/create\nx-room-id:{room}\nx-name:bench\nx-public:true\n\
             receipt:create\n\n\0"
        ),
        "create",
        wait,
    )
    .await
    .map(|_| ())
}

/// Joins public room `room`.
async fn join_room(conn: &mut Conn, room: &str, wait: Duration) -> Result<()> {
    command(
        conn,
        &format!("SEND\ndestination:/room/{room}/join\nreceipt:join\n\n\0"),
        "join",
        wait,
    )
    .await
    .map(|_| ())
}

/// Reads a posting connection: RECEIPTs `r<seq>` set counter `slot` of
/// `progress` to `seq + 1`; a RECEIPT with `x-error` (rate limited, room
/// busy …) fails; `bye` ends it.
async fn post_reader(mut reader: FrameReader, progress: Arc<Progress>, slot: usize) -> Result<()> {
    let base = Instant::now();
    loop {
        let mut bye = false;
        let mut top = None;
        let drained = reader.drain(|v| {
            if v.command != Cmd::Receipt {
                bail!("unexpected frame on a posting connection: {}", v.describe());
            }
            if let Some(e) = v.header(b"x-error") {
                bail!("post refused: {}", String::from_utf8_lossy(e));
            }
            if v.receipt_id == b"bye" {
                bye = true;
            } else {
                let seq = parse_receipt_seq(v.receipt_id)
                    .ok_or_else(|| anyhow!("unknown receipt-id: {}", v.describe()))?;
                top = Some(seq + 1);
            }
            Ok(())
        });
        if let (Ok(_), Some(n)) = (&drained, top) {
            progress.advance(slot, n, base.elapsed().as_nanos() as u64);
        }
        let step = match drained {
            Ok(_) if bye => return Ok(()),
            Ok(_) => super::common::fill_open(&mut reader, "posting").await,
            Err(e) => Err(e),
        };
        if let Err(e) = step {
            progress.fail(format!("posting connection {slot}: {e:#}"));
            return Err(e);
        }
    }
}

/// How a poster is held back.
#[derive(Debug, Clone, Copy)]
struct PostLimit {
    /// Its receipts counter in the shared progress.
    slot: usize,
    /// Most posts not yet confirmed by a RECEIPT.
    ahead: u64,
    /// A RECEIPT is asked for every this many posts (and on the last).
    every: u64,
    /// End-to-end: receivers in `0..receivers` of the progress; the poster
    /// stays at most `share` posts ahead of its share (1 / `posters`) of
    /// what the slowest of them received.
    window: Option<(usize, u64, u64)>,
}

impl PostLimit {
    fn allowed(&self, progress: &Progress) -> u64 {
        let by_receipts = progress.count(self.slot).saturating_add(self.ahead);
        match self.window {
            None => by_receipts,
            Some((receivers, posters, share)) => {
                let slowest = progress.counts[..receivers.min(progress.counts.len())]
                    .iter()
                    .map(|c| c.load(std::sync::atomic::Ordering::Acquire))
                    .min()
                    .unwrap_or(0);
                by_receipts.min((slowest / posters.max(1)).saturating_add(share))
            }
        }
    }
}

/// What one poster did.
#[derive(Debug, Default, Clone, Copy)]
struct Posted {
    sent: u64,
    start_ns: u64,
    end_ns: u64,
    time_bounded: bool,
}

/// Posts `n` messages from producer `p` to `/room/{room}`, pipelined
/// within `limit`, then waits for the last RECEIPT and disconnects.
#[allow(clippy::too_many_arguments)]
async fn post(
    ctx: Ctx,
    conn: Conn,
    p: u32,
    room: String,
    n: u64,
    limit: PostLimit,
    progress: Arc<Progress>,
    max_secs: f64,
) -> Result<Posted> {
    let s = &ctx.settings;
    let dest = format!("/room/{room}");
    let plain = SendTemplate::new(&dest, p, s.body_size, false);
    let confirmed = SendTemplate::new(&dest, p, s.body_size, true);
    let reader = tokio::spawn(post_reader(conn.reader, Arc::clone(&progress), limit.slot));
    let mut writer = conn.writer;
    let batch = s.batch as u64;
    let need = batch.min(limit.every).max(1);
    let mut out = OutBatch::with_capacity(s.batch * (confirmed.len() + 32));
    let deadline = Instant::now() + Duration::from_secs_f64(max_secs);
    let mut done = Posted {
        start_ns: ctx.now_ns(),
        ..Posted::default()
    };
    while done.sent < n {
        if Instant::now() >= deadline {
            done.time_bounded = true;
            break;
        }
        let sent = done.sent;
        let want = need.min(n - sent);
        if limit.allowed(&progress).saturating_sub(sent) < want {
            progress
                .wait_until(ctx.drain(), || {
                    limit.allowed(&progress).saturating_sub(sent) >= want
                })
                .await
                .with_context(|| format!("poster {p}: stalled after {sent} posts"))?;
            continue;
        }
        let k = batch
            .min(limit.allowed(&progress).saturating_sub(sent))
            .min(n - sent);
        for seq in sent..sent + k {
            if (seq + 1) % limit.every == 0 || seq + 1 == n {
                confirmed.encode(seq, 0, 0, &mut out.bytes);
            } else {
                plain.encode(seq, 0, 0, &mut out.bytes);
            }
            out.end_frame();
        }
        writer.send(&mut out).await?;
        done.sent += k;
    }
    // Stopped by the time bound, the last posts may have asked for no
    // RECEIPT: wait for the last one that did.
    let sent = done.sent;
    let confirm = if done.time_bounded {
        sent - sent % limit.every
    } else {
        sent
    };
    progress
        .wait_until(ctx.drain(), || progress.count(limit.slot) >= confirm)
        .await
        .with_context(|| format!("poster {p}: not every post was confirmed"))?;
    done.end_ns = ctx.now_ns();
    let mut bye = OutBatch::with_capacity(64);
    bye.push_frame(b"DISCONNECT\nreceipt:bye\n\n\0");
    writer.send(&mut bye).await?;
    tokio::time::timeout(ctx.drain(), reader)
        .await
        .map_err(|_| anyhow!("poster {p}: DISCONNECT got no RECEIPT"))?
        .map_err(|e| anyhow!("poster {p}: reader task: {e}"))??;
    Ok(done)
}

/// Unconfirmed posts per connection when `posters` connections post to
/// one room.
fn ahead_per_poster(ctx: &Ctx, posters: usize) -> u64 {
    ctx.settings
        .chat_in_flight
        .unwrap_or(ROOM_BUDGET / posters.max(1) as u64)
        .max(1)
}

/// Users `fill0…`: the first creates the room, the others join it.
async fn fill_connections(ctx: &Ctx, room: &str, n: usize, create: bool) -> Result<Vec<Conn>> {
    let wait = ctx.drain();
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut conn = connect(ctx, TransportKind::Tcp, &format!("fill{i}")).await?;
        if create && i == 0 {
            create_room(&mut conn, room, wait).await?;
        } else {
            join_room(&mut conn, room, wait).await?;
        }
        conns.push(conn);
    }
    Ok(conns)
}

/// Posts `n` messages to `room` from the connections of `conns` (equal
/// shares, producer numbers from `first_producer`), pipelined, as fast as
/// the broker confirms them. Returns the seconds it took (last RECEIPT
/// included).
async fn fill(ctx: &Ctx, room: &str, conns: Vec<Conn>, n: u64) -> Result<f64> {
    let posters = conns.len().max(1);
    let progress = Arc::new(Progress::new(posters));
    let ahead = ahead_per_poster(ctx, posters);
    let shares = super::common::split(n, posters);
    let t = Instant::now();
    let mut tasks = JoinSet::new();
    for (p, (conn, share)) in conns.into_iter().zip(shares).enumerate() {
        let limit = PostLimit {
            slot: p,
            ahead,
            every: (ahead / 4).max(1),
            window: None,
        };
        tasks.spawn(post(
            ctx.clone(),
            conn,
            p as u32,
            room.to_owned(),
            share,
            limit,
            Arc::clone(&progress),
            1e6,
        ));
    }
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| anyhow!("filling task: {e}"))??;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// A small deterministic random generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed` (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The marker file of a filled, reusable data directory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct FillMarker {
    key: String,
    room: String,
    epoch: String,
    head: u64,
    messages: u64,
    fill_secs: f64,
    fillers: usize,
}

/// The cache directory name for a room of `n` messages.
fn cache_key(ctx: &Ctx, n: u64) -> String {
    format!(
        "chat-history-v{FILL_VERSION}-{n}msgs-{}B-stompede{}",
        ctx.settings.body_size,
        env!("CARGO_PKG_VERSION")
    )
}

/// Where a chat-history room lives: a cached or a temporary directory.
struct Store {
    dir: PathBuf,
    _scratch: Option<ScratchDir>,
    cached: bool,
}

/// Runs `chat-history`.
pub async fn history(ctx: &Ctx) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("chat-history", "tcp");
    report.metric = "history page p99 (request → last event)".into();
    report.unit = "ms".into();
    let n = s.chat_messages;
    let wait = ctx.drain();
    let mut chat = ChatReport {
        room_messages: n,
        ..ChatReport::default()
    };

    // Where the store is, and whether a filled one can be reused.
    let key = cache_key(ctx, n);
    let store = match (&ctx.broker_binary, &s.chat_cache) {
        (Some(_), Some(cache)) => Store {
            dir: cache.join(&key),
            _scratch: None,
            cached: true,
        },
        _ => {
            let scratch = ScratchDir::new("chat-history", &ctx.run_id)?;
            Store {
                dir: scratch.path().to_owned(),
                _scratch: Some(scratch),
                cached: false,
            }
        }
    };
    let marker_path = store.dir.join("fill.json");
    let config = store.dir.join("stompede.toml");
    let data = store.dir.join("store");
    let reusable: Option<FillMarker> = if store.cached && !s.chat_refill {
        std::fs::read(&marker_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<FillMarker>(&b).ok())
            .filter(|m| m.key == key && m.messages == n)
    } else {
        None
    };

    let mut target: Option<Target> = None;
    let mut room_info: Option<(String, ReplayEnd)> = None;
    if let Some(m) = &reusable {
        std::fs::write(&config, chat_config(ctx))?;
        let t = Target::start(ctx, &data, &config).await?;
        let mut conn = connect(&t.ctx, TransportKind::Tcp, "fill0").await?;
        match probe(&mut conn, &m.room, wait).await {
            Ok(end) if end.epoch == m.epoch && end.head == m.head => {
                chat.fill_secs = Some(m.fill_secs);
                chat.fill_rate = Some(n as f64 / m.fill_secs.max(1e-9));
                chat.fill_cached = true;
                report.notes.push(format!(
                    "reused the filled store {} (filled earlier in {:.1} s, {} posts/s)",
                    store.dir.display(),
                    m.fill_secs,
                    fmt_num(n as f64 / m.fill_secs.max(1e-9))
                ));
                room_info = Some((m.room.clone(), end));
                disconnect(&mut conn, wait, |_| Ok(())).await?;
                target = Some(t);
            }
            other => {
                report.notes.push(format!(
                    "the cached store {} did not match its marker ({:?}); refilling",
                    store.dir.display(),
                    other
                        .map(|e| (e.epoch, e.head))
                        .map_err(|e| format!("{e:#}"))
                ));
                t.stop(&mut report).await?;
            }
        }
    }
    if room_info.is_none() {
        // Fill a fresh store.
        if store.cached {
            let _ = std::fs::remove_dir_all(&store.dir);
        }
        std::fs::create_dir_all(&store.dir)
            .with_context(|| format!("create {}", store.dir.display()))?;
        std::fs::write(&config, chat_config(ctx))?;
        let t = Target::start(ctx, &data, &config).await?;
        let room = format!("hist-{}", ctx.run_id);
        let conns = fill_connections(&t.ctx, &room, s.chat_fillers, true).await?;
        let secs = fill(&t.ctx, &room, conns, n).await?;
        let mut conn = connect(&t.ctx, TransportKind::Tcp, "fill0").await?;
        let end = probe(&mut conn, &room, wait).await?;
        disconnect(&mut conn, wait, |_| Ok(())).await?;
        chat.fill_secs = Some(secs);
        chat.fill_rate = Some(n as f64 / secs.max(1e-9));
        report.notes.push(format!(
            "filled the room with {} posts from {} connections in {:.1} s ({} posts/s, head seq {})",
            fmt_num(n as f64),
            s.chat_fillers,
            secs,
            fmt_num(n as f64 / secs.max(1e-9)),
            end.head
        ));
        if store.cached && t.broker.is_some() {
            // Stop, keep, and measure on a freshly started broker, as a
            // reused store is.
            let mut r = Report::default();
            t.stop(&mut r).await?;
            if !r.problems.is_empty() {
                bail!("stopping the filled broker: {}", r.problems.join("; "));
            }
            let marker = FillMarker {
                key: key.clone(),
                room: room.clone(),
                epoch: end.epoch.clone(),
                head: end.head,
                messages: n,
                fill_secs: secs,
                fillers: s.chat_fillers,
            };
            std::fs::write(&marker_path, serde_json::to_vec_pretty(&marker)?)?;
            report.notes.push(format!(
                "kept the filled store in {} for later runs (--chat-refill to refill)",
                store.dir.display()
            ));
            target = Some(Target::start(ctx, &data, &config).await?);
        } else {
            target = Some(t);
        }
        room_info = Some((room, end));
    }
    let (Some(t), Some((room, end))) = (target, room_info) else {
        bail!("no broker");
    };
    chat.store_bytes = Some(dir_bytes(&data));

    let result = pages(&t.ctx, &room, &end, n, &mut report, &mut chat).await;
    if let Err(e) = result {
        report.problem(format!("{e:#}"));
    }
    t.stop(&mut report).await?;
    report.chat = Some(chat);
    Ok(report)
}

/// The history pages, then one resume of 10,000 at the head of the big room.
async fn pages(
    ctx: &Ctx,
    room: &str,
    end: &ReplayEnd,
    n: u64,
    report: &mut Report,
    chat: &mut ChatReport,
) -> Result<()> {
    let s = &ctx.settings;
    let wait = ctx.drain();
    let page = s.chat_page_size.min(n);
    let first_post = (end.head + 1).saturating_sub(n);
    // x-before-seq in lo..=hi: every page is a full page of posts.
    let (lo, hi) = (first_post + page, end.head + 1);
    let mut rng = Rng::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7),
    );
    let mut conn = connect(ctx, TransportKind::Tcp, "fill0").await?;
    let mut last_ns = Vec::with_capacity(s.chat_pages as usize);
    let mut end_ns = Vec::with_capacity(s.chat_pages as usize);
    let mut out = OutBatch::with_capacity(256);
    let cpu = ctx.cpu_mark();
    let t_all = Instant::now();
    for i in 0..s.chat_pages {
        let before = lo + rng.below(hi - lo + 1);
        out.push_frame(
            format!(
                "SEND\ndestination:/room/{room}/history\nx-before-seq:{before}\nx-limit:{page}\n\
                 reply-to:/temp-queue/h\ncorrelation-id:p{i}\n\n\0"
            )
            .as_bytes(),
        );
        let t0 = Instant::now();
        conn.writer.send(&mut out).await?;
        let (mut got, mut t_last, mut t_end) = (0u64, None, None);
        let mut problem: Option<String> = None;
        while t_end.is_none() {
            match tokio::time::timeout(wait, conn.reader.fill()).await {
                Err(_) => {
                    bail!("history page {i} (before {before}): no history-end within {wait:?}")
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => bail!("connection closed during history page {i}"),
                Ok(Err(e)) => return Err(e),
            }
            let now = Instant::now();
            conn.reader.drain(|v| {
                if v.command != Cmd::Message {
                    bail!("unexpected frame: {}", v.describe());
                }
                match v.header(b"x-event") {
                    Some(b"history-end") => {
                        let count = number(v, "x-count")?;
                        if count != page && problem.is_none() {
                            problem = Some(format!("page {i}: x-count {count}, expected {page}"));
                        }
                        t_end = Some(now);
                    }
                    Some(b"error") => bail!(
                        "history page {i} refused: {}",
                        text(v.header(b"x-error"))
                    ),
                    _ => {
                        let seq = number(v, "x-seq")?;
                        let want = before - page + got;
                        if (seq != want || v.header(b"x-history") != Some(b"true"))
                            && problem.is_none()
                        {
                            problem = Some(format!(
                                "page {i} (before {before}): event {got} has x-seq {seq}, expected {want}"
                            ));
                        }
                        parse_stamp(v.body)?;
                        got += 1;
                        if got == page {
                            t_last = Some(now);
                        }
                    }
                }
                Ok(())
            })?;
        }
        if let Some(p) = problem {
            bail!(p);
        }
        let (Some(tl), Some(te)) = (t_last, t_end) else {
            bail!("history page {i}: {got} of {page} events before history-end");
        };
        last_ns.push((tl - t0).as_nanos() as u64);
        end_ns.push((te - t0).as_nanos() as u64);
    }
    let elapsed = t_all.elapsed().as_secs_f64();
    cpu.finish(ctx, report);
    let first_ms = last_ns.first().map_or(0.0, |&v| v as f64 / 1e6);
    let last = LatencyStats::from_ns(&mut last_ns);
    let endl = LatencyStats::from_ns(&mut end_ns);
    report.notes.push(format!(
        "{} pages of {page} at random x-before-seq in {lo}..={hi}, one after the other: \
         request → last event p50 {:.3} / p90 {:.3} / p99 {:.3} / p99.9 {:.3} / max {:.3} ms \
         (first page {:.3} ms); → history-end p99 {:.3} ms; {} pages/s",
        s.chat_pages,
        last.p50_us / 1e3,
        last.p90_us / 1e3,
        last.p99_us / 1e3,
        last.p999_us / 1e3,
        last.max_us / 1e3,
        first_ms,
        endl.p99_us / 1e3,
        fmt_num(s.chat_pages as f64 / elapsed.max(1e-9))
    ));
    report.value = last.p99_us / 1e3;
    report.elapsed_secs = elapsed;
    report.messages_sent = s.chat_pages;
    report.deliveries = s.chat_pages * page;
    report.subscribers = 1;
    report.connections = 1;
    report.delivery_rate = report.deliveries as f64 / elapsed.max(1e-9);
    chat.pages = s.chat_pages;
    chat.page_size = page;
    chat.page_last_event = Some(last);
    chat.page_end = Some(endl);

    // A resume of (up to) 10,000 at the head of this room, for comparison
    // with chat-resume's small room.
    let k = s.chat_missed.min(n);
    let since = end.head - k;
    let t0 = Instant::now();
    let mut got = 0u64;
    let re = subscribe_timeline(
        &mut conn,
        room,
        "resume",
        &format!("x-since-seq:{since}\nx-epoch:{}\n", end.epoch),
        wait,
        |_, _| {
            got += 1;
            Ok(())
        },
    )
    .await?;
    let secs = t0.elapsed().as_secs_f64();
    if !re.recovered || got != k {
        report.problem(format!(
            "resume of {k} in the big room: x-recovered {} with {got} replayed",
            re.recovered
        ));
    }
    report.notes.push(format!(
        "resume of the last {} events of this room (x-since-seq {since}): replay-end after {:.3} s",
        fmt_num(k as f64),
        secs
    ));
    chat.resume_missed = k;
    chat.resume_secs = vec![secs];
    disconnect(&mut conn, wait, |_| Ok(())).await?;
    Ok(())
}

/// Runs `chat-resume`.
pub async fn resume(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("chat-resume", transport.as_str());
    report.metric = "resume: SUBSCRIBE x-since-seq → replay-end".into();
    report.unit = "s".into();
    let wait = ctx.drain();
    let scratch = ScratchDir::new("chat-resume", &ctx.run_id)?;
    let config = scratch.write("stompede.toml", &chat_config(ctx))?;
    let t = Target::start(ctx, &scratch.path().join("store"), &config).await?;
    let room = format!("resume-{}-{}", transport.as_str(), ctx.run_id);
    let missed = s.chat_missed;
    let mut chat = ChatReport {
        resume_missed: missed,
        ..ChatReport::default()
    };
    let result = async {
        let c = &t.ctx;
        // The posters join first, then the member who goes away joins and
        // learns the epoch and head: only posts are missed.
        let mut fillers = Some(fill_connections(c, &room, s.chat_fillers, true).await?);
        let mut reader = connect(c, transport, "reader").await?;
        join_room(&mut reader, &room, wait).await?;
        let mut cursor = probe(&mut reader, &room, wait).await?;
        disconnect(&mut reader, wait, |_| Ok(())).await?;
        let (mut measured, mut broker_cpu, mut bench_cpu) = (0.0, Some(0.0), 0.0);
        for round in 0..s.chat_resumes {
            // Posted while the member is away.
            let conns = match fillers.take() {
                Some(v) => v,
                None => {
                    let mut v = Vec::new();
                    for i in 0..s.chat_fillers {
                        v.push(connect(c, TransportKind::Tcp, &format!("fill{i}")).await?);
                    }
                    v
                }
            };
            let fill_secs = fill(c, &room, conns, missed).await?;
            chat.fill_secs = Some(chat.fill_secs.unwrap_or(0.0) + fill_secs);
            // Back: connect (not timed), then SUBSCRIBE with the cursor.
            let t_conn = Instant::now();
            let mut conn = connect(c, transport, "reader").await?;
            let connect_ms = t_conn.elapsed().as_secs_f64() * 1e3;
            let cpu = c.cpu_mark();
            let t0 = Instant::now();
            let mut next = cursor.head + 1;
            let mut first: Option<Instant> = None;
            let mut problem: Option<String> = None;
            let end = subscribe_timeline(
                &mut conn,
                &room,
                "t",
                &format!("x-since-seq:{}\nx-epoch:{}\n", cursor.head, cursor.epoch),
                wait,
                |v, now| {
                    let seq = number(v, "x-seq")?;
                    if (seq != next || v.header(b"x-replay") != Some(b"true")) && problem.is_none()
                    {
                        problem = Some(format!(
                            "round {round}: replayed x-seq {seq}, expected {next}"
                        ));
                    }
                    parse_stamp(v.body)?;
                    first.get_or_insert(now);
                    next = seq + 1;
                    Ok(())
                },
            )
            .await?;
            let secs = t0.elapsed().as_secs_f64();
            measured += secs;
            let mut r = Report::default();
            cpu.finish(c, &mut r);
            broker_cpu = broker_cpu.zip(r.broker_cpu_secs).map(|(a, b)| a + b);
            bench_cpu += r.bench_cpu_secs;
            if let Some(p) = problem {
                bail!(p);
            }
            if !end.recovered || end.replayed != missed || next != cursor.head + missed + 1 {
                bail!(
                    "round {round}: replay-end x-recovered {} x-replayed {} after {} events \
                     (expected {missed}; [chat] max_replay is 10,000 by default)",
                    end.recovered,
                    end.replayed,
                    next - cursor.head - 1
                );
            }
            chat.resume_secs.push(secs);
            chat.resume_first_ms
                .push(first.map_or(0.0, |f| (f - t0).as_secs_f64() * 1e3));
            report.notes.push(format!(
                "round {round}: {} posted while away in {:.2} s; CONNECT {:.1} ms; SUBSCRIBE → \
                 first replayed {:.1} ms, → replay-end {:.1} ms",
                fmt_num(missed as f64),
                fill_secs,
                connect_ms,
                chat.resume_first_ms.last().copied().unwrap_or(0.0),
                secs * 1e3
            ));
            cursor = end;
            disconnect(&mut conn, wait, |_| Ok(())).await?;
        }
        Ok::<_, anyhow::Error>((measured, broker_cpu, bench_cpu))
    }
    .await;
    match result {
        Ok((measured, broker_cpu, bench_cpu)) => {
            // Time and CPU: the resumes only, summed.
            report.elapsed_secs = measured;
            report.broker_cpu_secs = broker_cpu;
            report.bench_cpu_secs = bench_cpu;
        }
        Err(e) => report.problem(format!("{e:#}")),
    }
    t.stop(&mut report).await?;
    let mut sorted = chat.resume_secs.clone();
    sorted.sort_by(f64::total_cmp);
    if let (Some(min), Some(max)) = (sorted.first(), sorted.last()) {
        let median = sorted[sorted.len() / 2];
        report.value = median;
        report.notes.insert(
            0,
            format!(
                "{} resumes of {} missed messages: median {:.3} s, min {:.3} s, max {:.3} s \
                 ({} replayed msgs/s at the median)",
                sorted.len(),
                fmt_num(missed as f64),
                median,
                min,
                max,
                fmt_num(missed as f64 / median.max(1e-9))
            ),
        );
    }
    report.messages_sent = missed * s.chat_resumes;
    report.deliveries = chat.resume_secs.len() as u64 * missed;
    report.subscribers = 1;
    report.connections = s.chat_fillers as u64 + 1;
    if report.elapsed_secs > 0.0 {
        report.delivery_rate = report.deliveries as f64 / report.elapsed_secs;
    }
    report.chat = Some(chat);
    Ok(report)
}

/// What one member saw.
#[derive(Debug, Default, Clone)]
struct MemberSeen {
    posts: u64,
    other_events: u64,
    problem: Option<String>,
    checks: Vec<SeqCheck>,
}

/// Checks one MESSAGE for a member: a post from publisher `p` with the
/// next sequence number of `p`, and the room's next `x-seq`.
fn on_member_message(v: &FrameView<'_>, seen: &mut MemberSeen, last_seq: &mut u64) -> Result<()> {
    if v.command != Cmd::Message || v.subscription != b"t" {
        bail!("unexpected frame on a member connection: {}", v.describe());
    }
    let seq = number(v, "x-seq")?;
    if *last_seq != 0 && seq != *last_seq + 1 && seen.problem.is_none() {
        seen.problem = Some(format!("x-seq {seq} after {last_seq}"));
    }
    *last_seq = seq;
    if v.header(b"x-event") != Some(b"message") {
        seen.other_events += 1;
        return Ok(());
    }
    let st = parse_stamp(v.body)?;
    let check = seen
        .checks
        .get_mut(st.producer as usize)
        .ok_or_else(|| anyhow!("post from unknown publisher {}", st.producer))?;
    check.observe(st.seq);
    seen.posts += 1;
    Ok(())
}

/// One member connection: checks and counts until told to stop, then
/// disconnects (checking whatever still arrives).
async fn member(
    mut conn: Conn,
    idx: usize,
    publishers: usize,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
    base: Instant,
    drain: Duration,
) -> Result<MemberSeen> {
    let mut seen = MemberSeen {
        checks: vec![SeqCheck::default(); publishers],
        ..MemberSeen::default()
    };
    let mut last_seq = 0u64;
    let result: Result<()> = loop {
        match super::common::read_or_stop(&mut conn.reader, &mut stop).await {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
        let before = seen.posts;
        if let Err(e) = conn
            .reader
            .drain(|v| on_member_message(v, &mut seen, &mut last_seq))
        {
            break Err(e);
        }
        if seen.posts > before {
            progress.advance(idx, seen.posts, base.elapsed().as_nanos() as u64);
        }
    };
    if let Err(e) = result {
        progress.fail(format!("member {idx}: {e:#}"));
        return Err(e);
    }
    disconnect(&mut conn, drain, |v| {
        on_member_message(v, &mut seen, &mut last_seq)
    })
    .await?;
    Ok(seen)
}

/// Runs `chat-fanout`.
pub async fn fanout(ctx: &Ctx, transport: TransportKind) -> Result<Report> {
    let s = &ctx.settings;
    let mut report = Report::new("chat-fanout", transport.as_str());
    report.metric = "deliveries/s to room members".into();
    report.unit = "deliveries/s".into();
    let scratch = ScratchDir::new("chat-fanout", &ctx.run_id)?;
    let config = scratch.write("stompede.toml", &chat_config(ctx))?;
    let t = Target::start(ctx, &scratch.path().join("store"), &config).await?;
    let members_n = s.chat_members;
    let publishers = s.chat_publishers;
    let mut chat = ChatReport {
        members: members_n as u64,
        publishers: publishers as u64,
        ..ChatReport::default()
    };
    let result = fanout_inner(&t.ctx, transport, &mut report, &mut chat).await;
    if let Err(e) = result {
        report.problem(format!("{e:#}"));
    }
    t.stop(&mut report).await?;
    report.chat = Some(chat);
    Ok(report)
}

async fn fanout_inner(
    c: &Ctx,
    transport: TransportKind,
    report: &mut Report,
    chat: &mut ChatReport,
) -> Result<()> {
    let s = &c.settings;
    let wait = c.drain();
    let room = format!("fanout-{}-{}", transport.as_str(), c.run_id);
    let (members_n, publishers) = (s.chat_members, s.chat_publishers);

    // Publishers: pub0 creates the (public) room, the others join.
    let mut pubs = Vec::with_capacity(publishers);
    for p in 0..publishers {
        let mut conn = connect(c, transport, &format!("pub{p}")).await?;
        if p == 0 {
            create_room(&mut conn, &room, wait).await?;
        } else {
            join_room(&mut conn, &room, wait).await?;
        }
        pubs.push(conn);
    }
    // Members: every one joins first, then every one subscribes (so no
    // member sees another's join live).
    let t_setup = Instant::now();
    let joined: Vec<Conn> = futures_util::stream::iter(0..members_n)
        .map(|i| {
            let (c, room) = (c.clone(), room.clone());
            async move {
                let mut conn = connect(&c, transport, &format!("member{i}")).await?;
                join_room(&mut conn, &room, c.drain()).await?;
                Ok::<_, anyhow::Error>(conn)
            }
        })
        .buffered(64)
        .try_collect()
        .await?;
    let subscribed: Vec<Conn> = futures_util::stream::iter(joined)
        .map(|mut conn| {
            let room = room.clone();
            async move {
                let end = subscribe_timeline(&mut conn, &room, "t", "", wait, |v, _| {
                    bail!("replay without asking: {}", v.describe())
                })
                .await?;
                Ok::<_, anyhow::Error>((conn, end))
            }
        })
        .buffered(64)
        .map_ok(|(conn, _)| conn)
        .try_collect()
        .await?;
    report.notes.push(format!(
        "{members_n} members (one user and one connection each) joined and subscribed in {:.1} s",
        t_setup.elapsed().as_secs_f64()
    ));

    // Counters 0..members: posts each member received; then one per
    // publisher: its RECEIPTs.
    let progress = Arc::new(Progress::new(members_n + publishers));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for (idx, conn) in subscribed.into_iter().enumerate() {
        tasks.spawn(member(
            conn,
            idx,
            publishers,
            Arc::clone(&progress),
            stop_rx.clone(),
            c.base,
            wait,
        ));
    }
    let ahead = ahead_per_poster(c, publishers);
    let window = s.window.max(publishers as u64);
    let share = (window / publishers as u64).max(1);
    let every = (ahead / 4).max(1);
    report.notes.push(format!(
        "{publishers} publisher(s); each at most {ahead} posts unconfirmed (RECEIPT every \
         {every}) and {share} posts ahead of its share of the slowest member \
         (--window {window} deliveries per member connection)"
    ));
    let shares = super::common::split(s.chat_posts, publishers);
    let cpu = c.cpu_mark();
    let mut posters = JoinSet::new();
    for (p, (conn, n)) in pubs.into_iter().zip(shares.iter().copied()).enumerate() {
        let limit = PostLimit {
            slot: members_n + p,
            ahead,
            every,
            window: Some((members_n, publishers as u64, share)),
        };
        posters.spawn(post(
            c.clone(),
            conn,
            p as u32,
            room.clone(),
            n,
            limit,
            Arc::clone(&progress),
            s.max_secs,
        ));
    }
    let mut sent = 0u64;
    let mut start_ns = u64::MAX;
    let mut time_bounded = false;
    while let Some(joined) = posters.join_next().await {
        match joined {
            Ok(Ok(p)) => {
                sent += p.sent;
                start_ns = start_ns.min(p.start_ns);
                time_bounded |= p.time_bounded;
            }
            Ok(Err(e)) => report.problem(format!("publisher: {e:#}")),
            Err(e) => report.problem(format!("publisher task: {e}")),
        }
    }
    if time_bounded {
        report.notes.push(format!(
            "time bound of {} s reached: {sent} posts sent",
            s.max_secs
        ));
    }
    let drained = progress
        .wait_until(wait, || (0..members_n).all(|i| progress.count(i) >= sent))
        .await;
    let end_ns = progress.last_advance_ns();
    cpu.finish(c, report);
    let _ = stop_tx.send(true);
    let mut deliveries = 0u64;
    let mut bad = 0usize;
    let mut other = 0u64;
    let mut examples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(seen)) => {
                deliveries += seen.posts;
                other += seen.other_events;
                let mut problem = seen.problem.clone();
                for (p, check) in seen.checks.iter().enumerate() {
                    if problem.is_none() {
                        problem = check
                            .problem(shares.get(p).copied().unwrap_or(0).min(sent))
                            .map(|e| format!("publisher {p}: {e}"));
                    }
                }
                if let Some(p) = problem {
                    bad += 1;
                    if examples.len() < 3 {
                        examples.push(p);
                    }
                }
            }
            Ok(Err(e)) => report.problem(format!("member: {e:#}")),
            Err(e) => report.problem(format!("member task: {e}")),
        }
    }
    progress.report_errors(report);
    if let Err(e) = drained {
        report.problem(format!("not every member received all {sent} posts: {e}"));
    }
    if bad > 0 && !time_bounded {
        report.problem(format!(
            "{bad} of {members_n} members did not get every post exactly once in order"
        ));
        for e in examples {
            report.problem(e);
        }
    }
    if other > 0 {
        report.notes.push(format!(
            "{other} other timeline events delivered (not counted)"
        ));
    }
    if sent == 0 {
        report.problem("nothing was sent");
    }
    let elapsed = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    report.messages_sent = sent;
    report.deliveries = deliveries;
    report.subscribers = members_n as u64;
    report.connections = (members_n + publishers) as u64;
    report.elapsed_secs = elapsed;
    if elapsed > 0.0 {
        report.publish_rate = sent as f64 / elapsed;
        report.delivery_rate = deliveries as f64 / elapsed;
    }
    report.value = report.delivery_rate;
    chat.posts = sent;
    report.notes.push(format!(
        "{} posts ({} posts/s) → {} deliveries",
        fmt_num(sent as f64),
        fmt_num(report.publish_rate),
        fmt_num(deliveries as f64)
    ));
    Ok(())
}

/// `x-<name>` of a RECEIPT's header lines, as text.
pub fn receipt_header(headers: &[u8], name: &str) -> Option<String> {
    find_header(headers, name.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng::new(42);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = r.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn receipt_headers_are_found() {
        assert_eq!(
            receipt_header(b"receipt-id:x\nx-seq:12\n", "x-seq").as_deref(),
            Some("12")
        );
        assert_eq!(receipt_header(b"receipt-id:x\n", "x-seq"), None);
    }
}
