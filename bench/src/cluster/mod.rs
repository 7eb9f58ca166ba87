//! The cluster benchmark: several `stompede` nodes bridged through one
//! Kafka-protocol server. [`harness`] starts Tansu and the nodes (with
//! `--start-broker`), [`run`] runs the cluster scenarios
//! (`scenario::cluster`) against them, [`options`] holds their settings.

pub mod harness;
pub mod options;
pub mod run;
pub mod tansu;

use crate::conn::Endpoints;
use crate::procfs;
use anyhow::{bail, Result};

/// The cluster a scenario runs against.
#[derive(Debug, Clone)]
pub struct ClusterTarget {
    /// The nodes' STOMP endpoints; node 0 publishes.
    pub nodes: Vec<Endpoints>,
    /// The nodes' process ids, where known (CPU readings).
    pub node_pids: Vec<Option<u32>>,
    /// The Kafka bootstrap address the nodes use.
    pub kafka: String,
    /// The Kafka server's process id, where known.
    pub kafka_pid: Option<u32>,
}

impl ClusterTarget {
    /// A running cluster given by `--cluster-tcp` and `--kafka`; the
    /// process ids are looked up from the ports through `/proc`.
    pub fn external(tcp: &[String], kafka: Option<&str>) -> Result<Self> {
        let Some(kafka) = kafka else {
            bail!(
                "the cluster scenarios need a cluster: --start-broker PATH (starts Tansu and the \
                 nodes), or --cluster-tcp and --kafka for running ones"
            );
        };
        if tcp.len() < 2 {
            bail!("--cluster-tcp needs at least two nodes, got {}", tcp.len());
        }
        let nodes = tcp
            .iter()
            .map(|t| tcp_endpoints(t))
            .collect::<Result<Vec<_>>>()?;
        let pid_of = |addr: &str| {
            Endpoints::port_of(addr).and_then(|port| procfs::pid_listening_on(port).ok())
        };
        Ok(ClusterTarget {
            node_pids: nodes.iter().map(|e| pid_of(&e.tcp_addr)).collect(),
            nodes,
            kafka_pid: pid_of(kafka),
            kafka: kafka.to_owned(),
        })
    }

    /// Node `i` (wrapping around).
    pub fn node(&self, i: usize) -> &Endpoints {
        &self.nodes[i % self.nodes.len()]
    }

    /// CPU readings of every cluster process (and this tool) now.
    pub fn cpu_mark(&self) -> ClusterCpu {
        let mut readings: Vec<(String, Option<f64>)> = self
            .node_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                (
                    format!("node {}", i + 1),
                    pid.and_then(|p| procfs::cpu_secs(p).ok()),
                )
            })
            .collect();
        readings.push((
            "kafka".into(),
            self.kafka_pid.and_then(|p| procfs::cpu_secs(p).ok()),
        ));
        readings.push(("bench".into(), Some(procfs::self_cpu_secs())));
        ClusterCpu {
            readings,
            at: std::time::Instant::now(),
        }
    }
}

/// An `Endpoints` for a TCP-only address (`tcp://host:port` or
/// `host:port`).
pub fn tcp_endpoints(tcp: &str) -> Result<Endpoints> {
    let tcp_addr = tcp
        .strip_prefix("tcp://")
        .unwrap_or(tcp)
        .trim_end_matches('/');
    if Endpoints::port_of(tcp_addr).is_none() {
        bail!("a cluster node must be tcp://host:port, got {tcp:?}");
    }
    Ok(Endpoints {
        tcp_addr: tcp_addr.to_owned(),
        ws_url: String::new(),
        ws_addr: String::new(),
    })
}

/// CPU time of the cluster's processes at one moment.
#[derive(Debug, Clone)]
pub struct ClusterCpu {
    readings: Vec<(String, Option<f64>)>,
    at: std::time::Instant,
}

impl ClusterCpu {
    /// Each process's CPU use since `self`, in % of one core over the wall
    /// time since then: `node 1 35%, node 2 20%, kafka 60%, bench 15%`.
    pub fn since(&self, target: &ClusterTarget) -> String {
        let now = target.cpu_mark();
        let wall = self.at.elapsed().as_secs_f64().max(1e-9);
        self.readings
            .iter()
            .zip(&now.readings)
            .map(|((name, a), (_, b))| match (a, b) {
                (Some(a), Some(b)) => format!("{name} {:.0}%", 100.0 * (b - a) / wall),
                _ => format!("{name} n/a"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_targets() {
        assert!(ClusterTarget::external(&["tcp://127.0.0.1:1".into()], Some("x:1")).is_err());
        assert!(ClusterTarget::external(&[], None).is_err());
        let t = ClusterTarget::external(
            &["tcp://127.0.0.1:1".into(), "127.0.0.1:2".into()],
            Some("127.0.0.1:3"),
        )
        .map_err(|e| e.to_string());
        assert_eq!(
            t.map(|t| (t.node(0).tcp_addr.clone(), t.node(3).tcp_addr.clone())),
            Ok(("127.0.0.1:1".into(), "127.0.0.1:2".into()))
        );
        assert!(tcp_endpoints("tcp://nope").is_err());
    }
}
