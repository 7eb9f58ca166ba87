//! Embedding Stompede in another tokio program.
//!
//! Starts a broker on ephemeral loopback ports, uses the in-process client
//! to run a tiny work queue and a topic, prints what happened, and shuts the
//! broker down. Run with `cargo run -p stompede-examples --example embed`.

use stompede::Broker;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let broker = Broker::builder()
        .tcp(Some("127.0.0.1:0"))
        .websocket(Some("127.0.0.1:0"))
        .admin(None)
        .store_in_memory()
        .build()
        .start()
        .await?;
    println!(
        "broker listening: tcp={:?} ws={:?}",
        broker.tcp_addr(),
        broker.ws_addr()
    );

    // A worker takes jobs from a queue and acknowledges each one.
    let mut worker = broker.client(Some("worker")).await?;
    worker
        .subscribe("jobs", "/queue/jobs", "client-individual")
        .await?;

    // A monitor listens to a topic the worker reports on.
    let mut monitor = broker.client(Some("monitor")).await?;
    monitor
        .subscribe("done", "/topic/jobs.done", "auto")
        .await?;

    let mut producer = broker.client(Some("producer")).await?;
    for n in 1..=3 {
        producer.send("/queue/jobs", format!("job {n}")).await?;
    }

    for _ in 1..=3 {
        let job = worker.next_message().await?;
        let text = String::from_utf8_lossy(&job.body).into_owned();
        worker.ack(&job).await?;
        worker
            .send("/topic/jobs.done", format!("{text} done"))
            .await?;
        let report = monitor.next_message().await?;
        println!("monitor saw: {}", String::from_utf8_lossy(&report.body));
    }

    broker.shutdown().await;
    Ok(())
}
