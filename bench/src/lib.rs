//! # stompede-bench
//!
//! A load benchmark for STOMP brokers over TCP and WebSocket. It runs
//! bounded scenarios (topic 1→1 throughput, topic fan-out, latency at a
//! fixed rate, idle WebSocket connections, competing queue consumers,
//! persistent queue messages confirmed once durable, recovery of a full
//! store after a restart; and, against a cluster of nodes bridged through
//! Kafka, cross-node throughput and latency next to a bare Kafka round
//! trip), checks that every message arrived exactly once
//! and in order (persistent ones: at least once, repeats flagged
//! `redelivered`), and reports a table or JSON. See `docs/benchmarks.md` for what each scenario
//! measures and how.
//!
//! The generator is meant to share a small machine with the broker, so it
//! is cheap: SEND frames are pre-encoded and patched, many frames go out per
//! write, and received frames are parsed without allocation
//! ([`scan`]; the project's codec is available with `--parser codec`).

pub mod body;
pub mod broker;
pub mod check;
pub mod cleanup;
pub mod cli;
pub mod cluster;
pub mod conn;
pub mod procfs;
pub mod report;
pub mod scan;
pub mod scenario;
