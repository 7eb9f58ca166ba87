//! Every scenario, over both transports, against an in-process stompede
//! broker, with small counts: the tool must report them all as correct.

use clap::Parser;
use std::time::Instant;
use stompede::Broker;
use stompede_bench::cli::{Args, Scenario};
use stompede_bench::conn::{Endpoints, TransportKind};
use stompede_bench::scenario::{self, Ctx};

#[test]
fn every_scenario_passes_against_stompede() {
    let broker_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = broker_rt
        .block_on(
            Broker::builder()
                .tcp(Some("127.0.0.1:0"))
                .websocket(Some("127.0.0.1:0"))
                .admin(None)
                .store_in_memory()
                .plugin(stompede_chat::ChatPlugin::new(stompede_chat::ChatConfig {
                    post_rate: 0,
                    typing_rate: 0,
                    read_rate: 0,
                    ..stompede_chat::ChatConfig::default()
                }))
                .build()
                .start(),
        )
        .unwrap();
    let tcp = format!("tcp://{}", handle.tcp_addr().unwrap());
    let ws = format!("ws://{}/ws", handle.ws_addr().unwrap());
    let args = Args::parse_from([
        "stompede-bench",
        "--quick",
        "--tcp",
        &tcp,
        "--ws",
        &ws,
        "--messages",
        "3000",
        "--fanout-messages",
        "500",
        "--subscribers",
        "40",
        "--fanout-connections",
        "8",
        "--latency-rate",
        "2000",
        "--latency-secs",
        "0.5",
        "--latency-warmup-secs",
        "0.1",
        "--idle-connections",
        "60",
        "--connect-concurrency",
        "16",
        "--settle-ms",
        "0",
        "--queue-messages",
        "3000",
        "--producers",
        "2",
        "--consumers",
        "3",
        "--prefetch",
        "50",
        "--persistent-messages",
        "2000",
        "--chat-messages",
        "600",
        "--chat-pages",
        "20",
        "--chat-missed",
        "500",
        "--chat-members",
        "10",
        "--chat-posts",
        "300",
    ]);
    let ctx = Ctx {
        settings: args.settings(),
        endpoints: Endpoints::parse(&args.tcp, &args.ws).unwrap(),
        broker_pid: Some(std::process::id()),
        run_id: "smoke".into(),
        base: Instant::now(),
        broker_binary: None,
        cluster: None,
    };
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for sc in Scenario::ALL {
        for transport in [TransportKind::Tcp, TransportKind::Ws] {
            if sc == Scenario::IdleConnections && transport == TransportKind::Tcp {
                continue;
            }
            if sc == Scenario::Recovery {
                // It restarts a broker process: without --start-broker it
                // can only say so.
                if transport == TransportKind::Tcp {
                    let r = client_rt.block_on(scenario::run(&ctx, sc, transport));
                    assert!(
                        r.len() == 1 && !r[0].ok && r[0].problems[0].contains("--start-broker"),
                        "{r:?}"
                    );
                }
                continue;
            }
            if sc.tcp_only() && transport == TransportKind::Ws {
                continue;
            }
            let reports = client_rt.block_on(scenario::run(&ctx, sc, transport));
            assert_eq!(reports.len(), 1, "{} reported {reports:?}", sc.name());
            let r = &reports[0];
            assert!(
                r.ok,
                "{} over {}: {:?}",
                sc.name(),
                transport.as_str(),
                r.problems
            );
            assert!(r.deliveries > 0, "{} delivered nothing", sc.name());
        }
    }
    broker_rt.block_on(handle.shutdown());
}
