//! Starts a whole cluster for a run: Tansu, then `stompede` nodes with
//! `[cluster] enabled = true` on free loopback ports, each waited for until
//! `GET /readyz` answers 200; stops them all at the end (nodes first, with
//! SIGTERM, then Tansu). Anything started is also stopped when the
//! [`ManagedCluster`] is dropped, or by the signal handler of
//! [`crate::cleanup`] on Ctrl-C.

use super::options::ClusterSettings;
use super::tansu::ManagedTansu;
use super::{ClusterTarget, Endpoints};
use crate::broker::{BrokerOpts, ManagedBroker, ScratchDir};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long one node may take to become ready (it creates the Kafka
/// topics, or waits for them).
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A running cluster this tool started.
pub struct ManagedCluster {
    /// The nodes, in order (node 1 first).
    pub nodes: Vec<ManagedBroker>,
    /// The Kafka-protocol server.
    pub tansu: ManagedTansu,
    /// Spawn of Tansu until the last node was ready.
    pub start_secs: f64,
    /// The nodes' configuration files.
    _configs: ScratchDir,
}

/// A node's configuration file.
pub fn node_config(settings: &ClusterSettings, bootstrap: &str, node: usize) -> String {
    format!(
        "[cluster]\nenabled = true\nnode_id = \"bench-node-{node}\"\n\
         bootstrap_servers = \"{bootstrap}\"\npartitions = {}\nlinger_ms = {}\n\
         fetch_wait_max_ms = {}\n",
        settings.partitions, settings.linger_ms, settings.fetch_wait_ms
    )
}

impl ManagedCluster {
    /// Starts Tansu and `settings.nodes` nodes of `binary` (memory store,
    /// `--log-level warn`); fails (stopping what it started) if any does
    /// not become ready.
    pub fn start(binary: &Path, settings: &ClusterSettings, run_id: &str) -> Result<Self> {
        let began = Instant::now();
        let tansu = ManagedTansu::start(&settings.tansu, run_id)?;
        let configs = ScratchDir::new("cluster", run_id)?;
        let mut nodes = Vec::with_capacity(settings.nodes);
        for i in 1..=settings.nodes {
            let config = configs.write(
                &format!("node-{i}.toml"),
                &node_config(settings, &tansu.bootstrap, i),
            )?;
            let opts = BrokerOpts {
                config: Some(config),
                admin: true,
                log_tag: format!("node-{i}"),
                start_timeout: NODE_READY_TIMEOUT,
                ..BrokerOpts::default()
            };
            let node = ManagedBroker::start_with(binary, run_id, &opts)
                .with_context(|| format!("start cluster node {i}"))?;
            nodes.push(node);
        }
        Ok(ManagedCluster {
            nodes,
            tansu,
            start_secs: began.elapsed().as_secs_f64(),
            _configs: configs,
        })
    }

    /// What the scenarios need to know.
    pub fn target(&self) -> Result<ClusterTarget> {
        Ok(ClusterTarget {
            nodes: self
                .nodes
                .iter()
                .map(|n| Endpoints::parse(&n.tcp_url, &n.ws_url))
                .collect::<Result<Vec<_>>>()?,
            node_pids: self.nodes.iter().map(|n| Some(n.pid)).collect(),
            kafka: self.tansu.bootstrap.clone(),
            kafka_pid: Some(self.tansu.pid),
        })
    }

    /// Fails if a node or Tansu has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.check_alive()
                .with_context(|| format!("cluster node {}", i + 1))?;
        }
        self.tansu.check_alive()
    }

    /// Stops the nodes (SIGTERM, each given 10 s), then Tansu. Returns what
    /// went wrong (a node that had to be killed).
    pub fn stop(self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, node) in self.nodes.into_iter().enumerate() {
            match node.stop() {
                Ok(true) => {}
                Ok(false) => problems.push(format!(
                    "cluster node {} had exited already or did not exit within 10 s of SIGTERM",
                    i + 1
                )),
                Err(e) => problems.push(format!("cluster node {}: {e:#}", i + 1)),
            }
        }
        self.tansu.stop();
        problems
    }
}
