//! The bare Kafka round trip the cluster latency is compared with: an
//! rdkafka producer with the broker's settings (`acks=all`, `linger.ms`,
//! lz4, one request in flight) sends to a fresh topic at a fixed rate; an
//! rdkafka consumer with the broker's `fetch.wait.max.ms`, assigned every
//! partition at its end before the first record, receives them.
//!
//! Pacing and timing are the `latency` scenario's: the producer runs on its
//! own thread and sleeps until each record is due; each record carries its
//! scheduled and actual send times in the benchmark body, and latency is
//! receive time minus scheduled time (no coordinated omission). Every
//! record must arrive exactly once and in order (one partition).

use crate::body::{parse_stamp, template_body, write_stamp};
use crate::check::SeqCheck;
use crate::report::LatencyStats;
use anyhow::{anyhow, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long creating the topic and reading its ends may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// The partition the records go to (the consumer reads them all).
const PARTITION: i32 = 0;

/// One bare round-trip measurement.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Kafka bootstrap address.
    pub bootstrap: String,
    /// A topic name not used before.
    pub topic: String,
    /// Its partitions (the nodes' count, so the consumer's fetches cover
    /// as many partitions as a node's do).
    pub partitions: u32,
    /// Records per second.
    pub rate: u64,
    /// Seconds of producing.
    pub secs: f64,
    /// Leading seconds left out of the percentiles.
    pub warmup_secs: f64,
    /// Record payload bytes.
    pub body_size: usize,
    /// Producer `linger.ms`.
    pub linger_ms: u32,
    /// Consumer `fetch.wait.max.ms`.
    pub fetch_wait_ms: u32,
    /// The clock base of the run.
    pub base: Instant,
    /// How long to wait for stragglers after the last record.
    pub drain: Duration,
}

/// What the round trip measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// From the scheduled send time.
    pub from_scheduled: LatencyStats,
    /// From handing the record to the producer.
    pub from_actual_send: LatencyStats,
    /// Records produced.
    pub sent: u64,
    /// Records received.
    pub received: u64,
    /// Loss, duplicates, reordering, failures.
    pub problems: Vec<String>,
}

/// The settings every client here shares (as the broker's nodes set them).
fn base_config(bootstrap: &str, role: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("stompede-bench-{role}"))
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "10000");
    c
}

/// Creates `topic` with `partitions` partitions (Tansu does not create
/// topics on first use) and waits until its metadata lists them.
async fn create_topic(bootstrap: &str, topic: &str, partitions: u32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(bootstrap, "admin")
        .create()
        .context("create the Kafka admin client")?;
    let new = NewTopic::new(topic, partitions.max(1) as i32, TopicReplication::Fixed(1));
    let options = AdminOptions::new()
        .request_timeout(Some(SETUP_TIMEOUT))
        .operation_timeout(Some(SETUP_TIMEOUT));
    let results = admin
        .create_topics([&new], &options)
        .await
        .context("create the round-trip topic")?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(anyhow!("cannot create the Kafka topic {name}: {code}"))
            }
        }
    }
    let (topic, want) = (topic.to_owned(), partitions.max(1) as usize);
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        loop {
            let found = admin
                .inner()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .ok()
                .and_then(|m| {
                    m.topics()
                        .iter()
                        .find(|t| t.name() == topic)
                        .map(|t| t.partitions().iter().filter(|p| p.leader() >= 0).count())
                })
                .unwrap_or(0);
            if found >= want {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "the topic {topic} has {found} of {want} partitions with a leader after {} s",
                    SETUP_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .map_err(|e| anyhow!("metadata task: {e}"))?
}

/// A consumer assigned every partition of `topic` at its current end.
fn consumer_at_end(plan: &Plan) -> Result<StreamConsumer> {
    let consumer: StreamConsumer = base_config(&plan.bootstrap, "rtt-consumer")
        .set("group.id", format!("{}.reader", plan.topic))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", plan.fetch_wait_ms.to_string())
        .set("fetch.error.backoff.ms", "50")
        .set("enable.partition.eof", "false")
        .create()
        .context("create the round-trip consumer")?;
    let mut assignment = TopicPartitionList::new();
    for p in 0..plan.partitions.max(1) as i32 {
        let (_, high) = consumer
            .fetch_watermarks(&plan.topic, p, SETUP_TIMEOUT)
            .with_context(|| format!("read the end of {} partition {p}", plan.topic))?;
        assignment
            .add_partition_offset(&plan.topic, p, Offset::Offset(high))
            .context("assignment")?;
    }
    consumer.assign(&assignment).context("assign")?;
    Ok(consumer)
}

/// A producer with the broker's settings.
fn producer(plan: &Plan) -> Result<FutureProducer> {
    base_config(&plan.bootstrap, "rtt-producer")
        .set("acks", "all")
        .set("linger.ms", plan.linger_ms.to_string())
        .set("message.timeout.ms", "30000")
        .set("max.in.flight.requests.per.connection", "1")
        .set("compression.type", "lz4")
        .create()
        .context("create the round-trip producer")
}

/// What the producing thread did.
#[derive(Debug, Default)]
struct Paced {
    sent: u64,
    time_bounded: bool,
}

/// Produces `n` records at `plan.rate` from `start_ns`; publishes the
/// count in `final_sent` when done (also on failure).
fn pace(
    plan: &Plan,
    producer: &FutureProducer,
    n: u64,
    start_ns: u64,
    final_sent: &AtomicU64,
) -> Result<Paced> {
    // Wake as close to each scheduled time as the kernel allows.
    let _ = crate::procfs::set_thread_timer_slack_ns(1);
    let mut body = template_body(0, plan.body_size);
    let rate = u128::from(plan.rate.max(1));
    let sched = |i: u64| start_ns + (u128::from(i) * 1_000_000_000 / rate) as u64;
    // Twice the planned time, at least 5 s more.
    let deadline_ns = start_ns + ((plan.secs * 2.0 + 5.0) * 1e9) as u64;
    let mut paced = Paced::default();
    let result = (|| {
        while paced.sent < n {
            let now = plan.base.elapsed().as_nanos() as u64;
            if now > deadline_ns {
                paced.time_bounded = true;
                break;
            }
            let due = sched(paced.sent);
            if now < due {
                std::thread::sleep(Duration::from_nanos(due - now));
                continue;
            }
            while paced.sent < n && sched(paced.sent) <= now {
                let i = paced.sent;
                write_stamp(
                    &mut body,
                    i,
                    sched(i),
                    plan.base.elapsed().as_nanos() as u64,
                );
                let mut record = FutureRecord::<str, [u8]>::to(&plan.topic)
                    .partition(PARTITION)
                    .key("rtt")
                    .payload(&body);
                loop {
                    match producer.send_result(record) {
                        // The delivery is checked at the consumer.
                        Ok(_delivery) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err((e, _)) => return Err(anyhow!("produce record {i}: {e}")),
                    }
                }
                paced.sent += 1;
            }
        }
        producer
            .flush(plan.drain)
            .map_err(|e| anyhow!("flush the producer: {e}"))
    })();
    final_sent.store(paced.sent, Ordering::Release);
    result.map(|()| paced)
}

/// Runs one round-trip measurement.
pub async fn measure(plan: &Plan) -> Result<Measured> {
    create_topic(&plan.bootstrap, &plan.topic, plan.partitions).await?;
    let consumer = consumer_at_end(plan)?;
    let producer = producer(plan)?;
    let n = ((plan.rate as f64) * plan.secs).round().max(1.0) as u64;
    let final_sent = Arc::new(AtomicU64::new(u64::MAX));
    // Start a little ahead so the first record is not already late.
    let start_ns = plan.base.elapsed().as_nanos() as u64 + 5_000_000;
    let warm_ns = start_ns + (plan.warmup_secs * 1e9) as u64;
    let thread = {
        let (plan, final_sent) = (plan.clone(), Arc::clone(&final_sent));
        std::thread::Builder::new()
            .name("kafka-rtt-producer".into())
            .spawn(move || pace(&plan, &producer, n, start_ns, &final_sent))
            .context("spawn the round-trip producer thread")?
    };

    let mut from_sched = Vec::with_capacity(n as usize);
    let mut from_actual = Vec::with_capacity(n as usize);
    let mut check = SeqCheck::default();
    let mut out = Measured::default();
    let mut last_progress = Instant::now();
    let tick = Duration::from_millis(100);
    loop {
        let target = final_sent.load(Ordering::Acquire);
        if check.received >= target {
            break;
        }
        if target != u64::MAX && last_progress.elapsed() > plan.drain {
            out.problems.push(format!(
                "no record for {:.1} s after the producer finished",
                plan.drain.as_secs_f64()
            ));
            break;
        }
        let msg = match tokio::time::timeout(tick, consumer.recv()).await {
            Err(_) => continue,
            Ok(Err(e)) => {
                out.problems.push(format!("consumer: {e}"));
                break;
            }
            Ok(Ok(m)) => m,
        };
        let now = plan.base.elapsed().as_nanos() as u64;
        let stamp = match msg.payload().map(parse_stamp) {
            Some(Ok(st)) => st,
            Some(Err(e)) => {
                out.problems.push(format!("record: {e:#}"));
                break;
            }
            None => {
                out.problems.push("a record without a payload".into());
                break;
            }
        };
        check.observe(stamp.seq);
        last_progress = Instant::now();
        if stamp.scheduled_ns >= warm_ns {
            from_sched.push(now.saturating_sub(stamp.scheduled_ns));
            from_actual.push(now.saturating_sub(stamp.actual_ns));
        }
    }
    let joined = tokio::task::spawn_blocking(move || thread.join())
        .await
        .map_err(|e| anyhow!("join the producer thread: {e}"))?;
    match joined {
        Ok(Ok(p)) => {
            out.sent = p.sent;
            if p.time_bounded {
                out.problems
                    .push(format!("the producer fell behind: sent {} of {n}", p.sent));
            }
        }
        Ok(Err(e)) => out.problems.push(format!("producer: {e:#}")),
        Err(_) => out.problems.push("the producer thread panicked".into()),
    }
    if let Some(p) = check.problem(out.sent) {
        out.problems.push(p);
    }
    out.received = check.received;
    out.from_scheduled = LatencyStats::from_ns(&mut from_sched);
    out.from_actual_send = LatencyStats::from_ns(&mut from_actual);
    Ok(out)
}
