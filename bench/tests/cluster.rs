//! The cluster scenarios, with small counts, against two in-process
//! stompede nodes bridged through a real Kafka-protocol server (Tansu,
//! installed by `scripts/install-tansu.sh`; the test fails without it): the
//! tool must report them all as correct, and the latency scenario must
//! carry the bare Kafka round trip.

use clap::Parser;
use std::time::Instant;
use stompede::{Broker, BrokerHandle, Config};
use stompede_bench::cli::{Args, Scenario};
use stompede_bench::cluster::tansu::ManagedTansu;
use stompede_bench::cluster::{tcp_endpoints, ClusterTarget};
use stompede_bench::scenario::{self, Ctx};

const PARTITIONS: u32 = 3;

async fn node(kafka: &str, id: usize) -> BrokerHandle {
    let config = Config::from_toml(&format!(
        "[cluster]\nenabled = true\nnode_id = \"bench-test-{id}\"\nbootstrap_servers = \
         \"{kafka}\"\npartitions = {PARTITIONS}\n"
    ))
    .expect("node config");
    Broker::builder()
        .config(config)
        .tcp(Some("127.0.0.1:0"))
        .websocket(Some("127.0.0.1:0"))
        .admin(None)
        .store_in_memory()
        .build()
        .start()
        .await
        .expect("start a cluster node")
}

#[test]
fn cluster_scenarios_pass_against_two_nodes() {
    let args = Args::parse_from([
        "stompede-bench",
        "--quick",
        "--cluster-partitions",
        "3",
        "--cluster-messages",
        "500",
        "--cluster-fanout-messages",
        "100",
        "--cluster-subscribers",
        "6",
        "--cluster-fanout-connections",
        "3",
        "--cluster-rate",
        "100,300",
        "--cluster-secs",
        "0.5",
        "--cluster-warmup-secs",
        "0.1",
    ]);
    let settings = args.settings();
    let tansu = ManagedTansu::start(&settings.cluster.tansu, "cluster-test").expect("tansu");
    let broker_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let nodes: Vec<BrokerHandle> = broker_rt.block_on(async {
        vec![
            node(&tansu.bootstrap, 1).await,
            node(&tansu.bootstrap, 2).await,
        ]
    });
    let target = ClusterTarget {
        nodes: nodes
            .iter()
            .map(|n| tcp_endpoints(&format!("{}", n.tcp_addr().expect("tcp"))).expect("addr"))
            .collect(),
        node_pids: vec![None, None],
        kafka: tansu.bootstrap.clone(),
        kafka_pid: Some(tansu.pid),
    };
    let ctx = Ctx {
        settings,
        endpoints: target.nodes[0].clone(),
        broker_pid: None,
        run_id: "cluster-test".into(),
        base: Instant::now(),
        broker_binary: None,
        cluster: Some(target),
    };
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for sc in Scenario::CLUSTER {
        let reports = client_rt.block_on(scenario::run(
            &ctx,
            sc,
            stompede_bench::conn::TransportKind::Tcp,
        ));
        let expected = if sc == Scenario::ClusterLatency { 2 } else { 1 };
        assert_eq!(reports.len(), expected, "{}: {reports:?}", sc.name());
        for r in &reports {
            assert!(r.ok, "{}: {:?}", sc.name(), r.problems);
            assert!(r.deliveries > 0, "{} delivered nothing", sc.name());
            assert_eq!(r.deliveries, r.messages_sent * r.subscribers);
            if sc == Scenario::ClusterLatency {
                let c = r.cluster.as_ref().expect("the bare Kafka round trip");
                assert!(c.kafka.samples > 0 && c.kafka_received == c.kafka_sent);
                assert!(c.p99_difference_ms.is_finite());
            }
        }
    }
    // A context without a cluster says what is missing.
    let mut alone = ctx.clone();
    alone.cluster = None;
    let r = client_rt.block_on(scenario::run(
        &alone,
        Scenario::Cluster1to1,
        stompede_bench::conn::TransportKind::Tcp,
    ));
    assert!(!r[0].ok && r[0].problems[0].contains("--start-broker"));
    broker_rt.block_on(async {
        for n in nodes {
            n.shutdown().await;
        }
    });
    tansu.stop();
}
