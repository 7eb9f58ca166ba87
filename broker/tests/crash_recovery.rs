//! Durability against the real `stompede` binary: persistent queue messages
//! survive a SIGKILL at a random moment and a graceful restart.
//!
//! The crash test runs several rounds on one data directory. In each round a
//! producer pipelines persistent SENDs (each with a `receipt` and a unique
//! sequence number, at most [`WINDOW`] unanswered) and, in the middle
//! rounds, a consumer ACKs what it gets; at a random moment after the
//! round's first RECEIPT the broker is killed with SIGKILL and started
//! again. At the end a consumer drains the queue.
//! The checks: every SEND that got its RECEIPT was delivered at least once,
//! nothing was delivered that was never sent, every body matches its
//! sequence number, and a message delivered more than once carries
//! `redelivered:true` on every delivery after the first.
//!
//! The random delays come from a seed printed at the start; set
//! `STOMPEDE_CRASH_SEED` to repeat a run's delays. `STOMPEDE_CRASH_CONFIG`
//! names a broker config file for the crash test: with `[store] fsync =
//! "never"` it must fail (receipted messages are lost), which shows that
//! the test bites.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stompede::codec::{Command, Frame, Item, StompCodec, Version};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::codec::Framed;

/// Unanswered persistent SENDs a producer keeps in flight.
const WINDOW: usize = 200;
/// SIGKILL rounds in the crash test.
const ROUNDS: usize = 4;
/// Longest wait for the broker to listen after it was started.
const START_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for a frame that must come.
const FRAME_WAIT: Duration = Duration::from_secs(10);

type Conn = Framed<TcpStream, StompCodec>;

/// The broker's environment variables (its flags' fallbacks).
const BROKER_ENV: [&str; 7] = [
    "STOMPEDE_CONFIG",
    "STOMPEDE_TCP_LISTEN",
    "STOMPEDE_WS_LISTEN",
    "STOMPEDE_DATA_DIR",
    "STOMPEDE_MEMORY_STORE",
    "STOMPEDE_LOG_FORMAT",
    "STOMPEDE_LOG",
];

// ---------------------------------------------------------------------------
// The broker process.

/// A scratch directory (data directory and broker log), removed on drop
/// unless the test failed.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("stompede-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("broker.log")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A running `stompede` process; killed on drop.
struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
    /// The `messages=` of its `store recovered` log line.
    recovered: u64,
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The last lines of the broker log.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(25)..].join("\n")
}

/// The `messages=N` of the last `store recovered` line in the log.
fn last_recovered(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().rev().find(|l| l.contains("store recovered"))?;
    let rest = &line[line.find("messages=")? + "messages=".len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

impl BrokerProcess {
    /// Starts the broker on `data` with `extra` arguments and waits until
    /// its TCP port accepts connections.
    async fn start(scratch: &Scratch, extra: &[&str]) -> BrokerProcess {
        let log_path = scratch.log();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the broker log");
        let err = log.try_clone().expect("clone the log handle");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("an address");
        let mut cmd = Process::new(env!("CARGO_BIN_EXE_stompede"));
        // Settings inherited from the environment must not change the
        // store or the log format.
        for var in BROKER_ENV {
            cmd.env_remove(var);
        }
        let child = cmd
            .arg("--tcp-listen")
            .arg(addr.to_string())
            .arg("--ws-listen")
            .arg("")
            .arg("--admin-listen")
            .arg("")
            .arg("--data-dir")
            .arg(scratch.data())
            .arg("--log-level")
            .arg("info")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("start the stompede binary");
        let mut broker = BrokerProcess {
            child,
            addr,
            log: log_path,
            recovered: 0,
        };
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!(
                    "the broker exited during start-up ({status}); log:\n{}",
                    log_tail(&broker.log)
                );
            }
            if TcpStream::connect(addr).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not listen on {addr} within {START_WAIT:?}; log:\n{}",
                log_tail(&broker.log)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The store is recovered before the listener opens.
        broker.recovered = last_recovered(&broker.log).unwrap_or_else(|| {
            panic!(
                "no 'store recovered' line in the log:\n{}",
                log_tail(&broker.log)
            )
        });
        broker
    }

    /// SIGKILL: no chance to flush anything.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the broker");
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    fn terminate(mut self) {
        let status = Process::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the broker") {
                assert!(
                    status.success(),
                    "the broker exited with {status} after SIGTERM; log:\n{}",
                    log_tail(&self.log)
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within 15 s of SIGTERM; log:\n{}",
                log_tail(&self.log)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// A minimal STOMP client over the project's codec.

/// Connects and completes the STOMP 1.2 handshake.
async fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut conn = Framed::new(stream, StompCodec::default());
    conn.send(
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "localhost")
            .header("heart-beat", "0,0"),
    )
    .await
    .map_err(std::io::Error::other)?;
    match next_frame(&mut conn, FRAME_WAIT).await {
        Some(f) if f.command == Command::Connected => {}
        other => {
            return Err(std::io::Error::other(format!(
                "expected CONNECTED, got {other:?}"
            )))
        }
    }
    conn.codec_mut().set_version(Version::V1_2);
    Ok(conn)
}

/// The next frame (heart-beats skipped); `None` on close, error or timeout.
async fn next_frame<S>(stream: &mut S, wait: Duration) -> Option<Frame>
where
    S: futures_util::Stream<Item = Result<Item, stompede::codec::DecodeError>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(Item::Frame(f)))) => return Some(f),
            Ok(Some(Ok(Item::HeartBeat))) => continue,
            _ => return None,
        }
    }
}

/// SUBSCRIBE with client-individual acks, confirmed by a receipt.
async fn subscribe(conn: &mut Conn, queue: &str, prefetch: u32) -> std::io::Result<()> {
    conn.send(
        Frame::new(Command::Subscribe)
            .header("id", "0")
            .header("destination", queue.to_owned())
            .header("ack", "client-individual")
            .header("prefetch-count", prefetch.to_string())
            .header("receipt", "subscribed"),
    )
    .await
    .map_err(std::io::Error::other)?;
    match next_frame(conn, FRAME_WAIT).await {
        Some(f) if f.command == Command::Receipt => Ok(()),
        other => Err(std::io::Error::other(format!(
            "expected the SUBSCRIBE receipt, got {other:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------
// What the test saw.

/// One delivery of a message.
#[derive(Debug, Clone, Copy)]
struct Seen {
    redelivered: bool,
    round: usize,
}

/// Everything sent, receipted and delivered, across rounds.
#[derive(Default)]
struct Ledger {
    /// Sequence numbers below this were (or may have been) written.
    next_seq: AtomicU64,
    /// Sequence numbers whose RECEIPT arrived.
    receipted: Mutex<BTreeSet<u64>>,
    /// Every delivery, per sequence number, in order.
    delivered: Mutex<BTreeMap<u64, Vec<Seen>>>,
    /// Anything that must fail the test (ERROR frames, bad bodies).
    problems: Mutex<Vec<String>>,
}

impl Ledger {
    fn problem(&self, p: String) {
        self.problems.lock().expect("ledger lock").push(p);
    }

    /// Records a MESSAGE; returns its `ack` id.
    fn on_message(&self, f: &Frame, round: usize) -> Option<String> {
        let seq = f.get("seq").and_then(|s| s.parse::<u64>().ok());
        let Some(seq) = seq else {
            self.problem(format!("MESSAGE without a seq header: {f:?}"));
            return f.get("ack").map(str::to_owned);
        };
        if f.body.as_ref() != body_of(seq).as_bytes() {
            self.problem(format!(
                "seq {seq}: body {:?} does not match",
                String::from_utf8_lossy(&f.body)
            ));
        }
        self.delivered
            .lock()
            .expect("ledger lock")
            .entry(seq)
            .or_default()
            .push(Seen {
                redelivered: f.get("redelivered") == Some("true"),
                round,
            });
        match f.get("ack") {
            Some(a) => Some(a.to_owned()),
            None => {
                self.problem(format!("seq {seq}: MESSAGE without an ack header"));
                None
            }
        }
    }
}

impl Ledger {
    /// Receipted sequence numbers never delivered.
    fn missing(&self) -> Vec<u64> {
        let delivered = self.delivered.lock().expect("ledger lock");
        self.receipted
            .lock()
            .expect("ledger lock")
            .iter()
            .copied()
            .filter(|s| !delivered.contains_key(s))
            .collect()
    }
}

fn body_of(seq: u64) -> String {
    format!("persistent message {seq}")
}

// ---------------------------------------------------------------------------
// Producer and consumer tasks.

/// One producer connection: SENDs from one task, RECEIPTs in another.
/// Returns when the broker is gone (the caller kills it).
struct Producer {
    writer: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
}

async fn start_producer(addr: SocketAddr, queue: &str, ledger: &Arc<Ledger>) -> Producer {
    let conn = connect(addr).await.expect("producer connects");
    let (sink, mut stream): (SplitSink<Conn, Frame>, SplitStream<Conn>) = conn.split();
    let window = Arc::new(Semaphore::new(WINDOW));
    let writer = {
        let (queue, ledger, window) = (queue.to_owned(), Arc::clone(ledger), Arc::clone(&window));
        tokio::spawn(async move {
            producer_writer(sink, queue, ledger, window).await;
        })
    };
    let reader = {
        let ledger = Arc::clone(ledger);
        tokio::spawn(async move {
            // Until end of stream: the process is killed eventually.
            while let Some(f) = next_frame(&mut stream, Duration::from_secs(30)).await {
                match f.command {
                    Command::Receipt => {
                        let id = f.get("receipt-id").and_then(|r| r.parse::<u64>().ok());
                        match id {
                            Some(seq) => {
                                ledger.receipted.lock().expect("ledger lock").insert(seq);
                                window.add_permits(1);
                            }
                            None => ledger.problem(format!("unexpected RECEIPT {f:?}")),
                        }
                    }
                    _ => ledger.problem(format!("unexpected frame for the producer: {f:?}")),
                }
            }
        })
    };
    Producer { writer, reader }
}

/// Writes SENDs while the window has room, flushing before it waits.
async fn producer_writer(
    mut sink: SplitSink<Conn, Frame>,
    queue: String,
    ledger: Arc<Ledger>,
    window: Arc<Semaphore>,
) {
    loop {
        let permit = match window.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                if sink.flush().await.is_err() {
                    return;
                }
                match window.acquire().await {
                    Ok(p) => p,
                    Err(_) => return,
                }
            }
        };
        permit.forget();
        // Counted as sent before the write starts: a write cut short by the
        // kill may still have reached the broker.
        let seq = ledger.next_seq.fetch_add(1, Ordering::SeqCst);
        let frame = Frame::new(Command::Send)
            .header("destination", queue.clone())
            .header("persistent", "true")
            .header("receipt", seq.to_string())
            .header("seq", seq.to_string())
            .body(body_of(seq));
        if sink.feed(frame).await.is_err() {
            return;
        }
        if seq % 32 == 31 && sink.flush().await.is_err() {
            return;
        }
    }
}

/// How long the final drain goes on while receipted messages are still
/// missing.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// A consumer that ACKs every MESSAGE until the connection ends, or, with
/// `until_idle` (the final drain), until every receipted message has been
/// delivered and nothing more arrives for that long (at most
/// [`DRAIN_LIMIT`] in all).
async fn consume(
    addr: SocketAddr,
    queue: &str,
    ledger: Arc<Ledger>,
    round: usize,
    until_idle: Option<Duration>,
) -> std::io::Result<u64> {
    let mut conn = connect(addr).await?;
    subscribe(&mut conn, queue, 100).await?;
    let wait = until_idle.unwrap_or(Duration::from_secs(30));
    let deadline = Instant::now() + DRAIN_LIMIT;
    let mut count = 0;
    loop {
        let f = match tokio::time::timeout(wait, conn.next()).await {
            Ok(Some(Ok(Item::Frame(f)))) => f,
            Ok(Some(Ok(Item::HeartBeat))) => continue,
            // Closed (the broker was killed) or undecodable.
            Ok(_) => break,
            Err(_) if until_idle.is_none() => break,
            // Idle: done once nothing receipted is missing.
            Err(_) if Instant::now() >= deadline || ledger.missing().is_empty() => break,
            Err(_) => continue,
        };
        if f.command != Command::Message {
            ledger.problem(format!("unexpected frame for the consumer: {f:?}"));
            continue;
        }
        count += 1;
        if let Some(ack) = ledger.on_message(&f, round) {
            conn.send(Frame::new(Command::Ack).header("id", ack))
                .await
                .map_err(std::io::Error::other)?;
        }
    }
    if until_idle.is_some() {
        // Make sure every ACK was processed before the caller stops the
        // broker.
        conn.send(Frame::new(Command::Disconnect).header("receipt", "bye"))
            .await
            .map_err(std::io::Error::other)?;
        match next_frame(&mut conn, FRAME_WAIT).await {
            Some(f) if f.command == Command::Receipt => {}
            other => {
                return Err(std::io::Error::other(format!(
                    "expected the DISCONNECT receipt, got {other:?}"
                )))
            }
        }
    }
    Ok(count)
}

/// splitmix64: small, seedable, good enough for delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn seed() -> u64 {
    std::env::var("STOMPEDE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// Waits for a task that ends when its connection does (bounded).
async fn join_bounded<T>(task: tokio::task::JoinHandle<T>, what: &str) -> Option<T> {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) if e.is_cancelled() => None,
        Ok(Err(e)) => panic!("{what} task failed: {e}"),
        Err(_) => {
            abort.abort();
            panic!("{what} did not notice the broker was killed within 10 s");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_persistent_messages_survive_sigkill() {
    let seed = seed();
    eprintln!("crash_recovery: seed {seed} (set STOMPEDE_CRASH_SEED={seed} to repeat the delays)");
    let mut rng = Rng(seed);
    let scratch = Scratch::new("crash");
    let queue = "/queue/crash";
    let ledger = Arc::new(Ledger::default());
    let started = Instant::now();
    let mut recovered = Vec::new();
    let config = std::env::var("STOMPEDE_CRASH_CONFIG").ok();
    let extra: Vec<&str> = match &config {
        Some(path) => vec!["--config", path],
        None => Vec::new(),
    };

    for round in 0..ROUNDS {
        let broker = BrokerProcess::start(&scratch, &extra).await;
        recovered.push(broker.recovered);
        // In the middle rounds a consumer ACKs while the producer sends, so
        // the kill also lands among deletes; the last round leaves its
        // messages for the recovery before the final drain.
        let consumer = (round % 3 != 0).then(|| {
            let (ledger, queue) = (Arc::clone(&ledger), queue.to_owned());
            let addr = broker.addr;
            tokio::spawn(async move { consume(addr, &queue, ledger, round, None).await })
        });
        let before = ledger.receipted.lock().expect("ledger lock").len();
        let producer = start_producer(broker.addr, queue, &ledger).await;
        // The random delay runs from the round's first RECEIPT, so that
        // every round kills a broker that is confirming writes.
        let deadline = Instant::now() + FRAME_WAIT;
        while ledger.receipted.lock().expect("ledger lock").len() == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: no RECEIPT within {FRAME_WAIT:?} of the first SEND; log:\n{}",
                log_tail(&broker.log)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let delay = rng.between(50, 400);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        broker.kill();
        producer.writer.abort();
        join_bounded(producer.reader, "the producer's reader").await;
        if let Some(c) = consumer {
            // An error is expected: the broker died under it.
            let _ = join_bounded(c, "the consumer").await;
        }
        eprintln!(
            "round {round}: killed after {delay} ms; sent {}, receipted {}",
            ledger.next_seq.load(Ordering::SeqCst),
            ledger.receipted.lock().expect("ledger lock").len()
        );
    }

    // Drain: everything receipted must come (back).
    let broker = BrokerProcess::start(&scratch, &extra).await;
    recovered.push(broker.recovered);
    let drained = consume(
        broker.addr,
        queue,
        Arc::clone(&ledger),
        ROUNDS,
        Some(Duration::from_millis(500)),
    )
    .await
    .expect("the final consumer drains the queue");
    broker.terminate();

    let problems = ledger.problems.lock().expect("ledger lock").clone();
    assert!(problems.is_empty(), "problems: {problems:#?}");
    let sent = ledger.next_seq.load(Ordering::SeqCst);
    let receipted = ledger.receipted.lock().expect("ledger lock").clone();
    let delivered = ledger.delivered.lock().expect("ledger lock").clone();
    eprintln!(
        "crash_recovery: {ROUNDS} kills in {:.1} s; sent {sent}, receipted {}, delivered {} \
         distinct ({} in the final drain), recovered per start {recovered:?}",
        started.elapsed().as_secs_f64(),
        receipted.len(),
        delivered.len(),
        drained
    );
    assert!(
        receipted.len() >= ROUNDS,
        "too few receipts ({}) for the test to mean anything",
        receipted.len()
    );
    let lost = ledger.missing();
    assert!(
        lost.is_empty(),
        "{} receipted message(s) never delivered (seed {seed}); first: {:?}",
        lost.len(),
        &lost[..lost.len().min(20)]
    );
    let unknown: Vec<u64> = delivered.keys().copied().filter(|&s| s >= sent).collect();
    assert!(unknown.is_empty(), "delivered but never sent: {unknown:?}");
    let unflagged: Vec<(u64, Vec<(usize, bool)>)> = delivered
        .iter()
        .filter(|(_, seen)| seen.iter().skip(1).any(|s| !s.redelivered))
        .map(|(&s, seen)| (s, seen.iter().map(|d| (d.round, d.redelivered)).collect()))
        .take(10)
        .collect();
    assert!(
        unflagged.is_empty(),
        "duplicate deliveries without redelivered:true \
         (seq, [(round, redelivered)] per delivery): {unflagged:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_unacked_messages() {
    let scratch = Scratch::new("restart");
    let queue = "/queue/restart";
    let broker = BrokerProcess::start(&scratch, &[]).await;
    assert_eq!(broker.recovered, 0, "a fresh store recovered messages");

    // 20 persistent messages, each confirmed; one that is not persistent.
    let mut producer = connect(broker.addr).await.expect("producer connects");
    for seq in 0..20u64 {
        producer
            .send(
                Frame::new(Command::Send)
                    .header("destination", queue)
                    .header("persistent", "true")
                    .header("receipt", seq.to_string())
                    .header("seq", seq.to_string())
                    .body(body_of(seq)),
            )
            .await
            .expect("send");
    }
    producer
        .send(
            Frame::new(Command::Send)
                .header("destination", queue)
                .header("receipt", "transient")
                .header("seq", "999")
                .body(body_of(999)),
        )
        .await
        .expect("send");
    for _ in 0..21 {
        let r = next_frame(&mut producer, FRAME_WAIT)
            .await
            .expect("a RECEIPT for every SEND");
        assert_eq!(r.command, Command::Receipt, "{r:?}");
    }

    // A consumer takes 10 (its prefetch), ACKs the first 5 and keeps the
    // rest (and whatever the freed credit brings) unacknowledged.
    let mut consumer = connect(broker.addr).await.expect("consumer connects");
    subscribe(&mut consumer, queue, 10)
        .await
        .expect("subscribe");
    let mut unacked = Vec::new();
    for i in 0..10u64 {
        let m = next_frame(&mut consumer, FRAME_WAIT)
            .await
            .expect("a MESSAGE");
        assert_eq!(m.command, Command::Message, "{m:?}");
        assert_eq!(m.get("seq"), Some(i.to_string().as_str()), "{m:?}");
        assert_ne!(m.get("redelivered"), Some("true"), "first delivery: {m:?}");
        let ack = m.get("ack").expect("an ack header").to_owned();
        if i < 5 {
            let mut f = Frame::new(Command::Ack).header("id", ack);
            if i == 4 {
                f = f.header("receipt", "acked");
            }
            consumer.send(f).await.expect("ack");
        } else {
            unacked.push(i);
        }
    }
    // The ACKs free credit: more MESSAGEs may come before the RECEIPT.
    loop {
        let f = next_frame(&mut consumer, FRAME_WAIT)
            .await
            .expect("the ACK receipt");
        match f.command {
            Command::Receipt => {
                assert_eq!(f.get("receipt-id"), Some("acked"), "{f:?}");
                break;
            }
            Command::Message => {
                let seq: u64 = f
                    .get("seq")
                    .and_then(|s| s.parse().ok())
                    .expect("a seq header");
                unacked.push(seq);
            }
            _ => panic!("unexpected frame: {f:?}"),
        }
    }

    // SIGTERM with the consumer still connected.
    broker.terminate();
    drop((producer, consumer));

    let broker = BrokerProcess::start(&scratch, &[]).await;
    assert_eq!(
        broker.recovered, 15,
        "after a graceful stop the store should hold the 15 unacknowledged persistent messages"
    );
    let mut consumer = connect(broker.addr).await.expect("consumer connects");
    subscribe(&mut consumer, queue, 100)
        .await
        .expect("subscribe");
    let mut got = Vec::new();
    while let Some(m) = next_frame(&mut consumer, Duration::from_millis(1000)).await {
        assert_eq!(m.command, Command::Message, "{m:?}");
        let seq: u64 = m
            .get("seq")
            .and_then(|s| s.parse().ok())
            .expect("a seq header");
        assert_eq!(m.body.as_ref(), body_of(seq).as_bytes(), "{m:?}");
        if unacked.contains(&seq) {
            assert_eq!(
                m.get("redelivered"),
                Some("true"),
                "a delivery unacknowledged at shutdown must come back flagged: {m:?}"
            );
        }
        consumer
            .send(Frame::new(Command::Ack).header("id", m.get("ack").expect("ack").to_owned()))
            .await
            .expect("ack");
        got.push(seq);
    }
    assert_eq!(
        got,
        (5..20).collect::<Vec<u64>>(),
        "after the restart: the unacknowledged persistent messages, in order, and nothing else"
    );
    broker.terminate();
}
