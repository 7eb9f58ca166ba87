//! Creates the cluster's Kafka topics when they are missing (not every
//! Kafka-compatible server creates topics on first use) and checks that
//! existing ones have the partition count every node assumes.

use super::health::Health;
use crate::config::ClusterConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

/// How long one attempt to reach Kafka may take at start.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the missing topics of `names`; checks the partition counts.
pub(super) async fn ensure_topics(config: &ClusterConfig, names: &[String]) -> Result<(), String> {
    let plugin_logs = format!("{}.plugin.", config.topic_prefix);
    let admin: AdminClient<DefaultClientContext> = super::client::base(config, "setup", "admin")
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| {
            let topic = NewTopic::new(
                name,
                config.partitions.max(1) as i32,
                TopicReplication::Fixed(i32::from(config.replication_factor.max(1))),
            );
            // A plugin log is its plugin's state (a chat room's whole
            // history): Kafka must not delete it by age or size.
            match name.starts_with(&plugin_logs) {
                true => topic.set("retention.ms", "-1").set("retention.bytes", "-1"),
                false => topic,
            }
        })
        .collect();
    let options = AdminOptions::new()
        .request_timeout(Some(SETUP_TIMEOUT))
        .operation_timeout(Some(SETUP_TIMEOUT));
    let results = admin
        .create_topics(topics.iter(), &options)
        .await
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, partitions = config.partitions, "Kafka topic created")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(format!("cannot create the Kafka topic {name}: {code}"))
            }
        }
    }
    let names = names.to_vec();
    let expected = config.partitions.max(1) as usize;
    tokio::task::spawn_blocking(move || check_partitions(&admin, &names, expected))
        .await
        .map_err(|e| e.to_string())?
}

/// Every node maps destinations with the configured partition count: a
/// topic made with another count would split a destination's order.
fn check_partitions(
    admin: &AdminClient<DefaultClientContext>,
    names: &[String],
    expected: usize,
) -> Result<(), String> {
    for name in names {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(name), SETUP_TIMEOUT)
            .map_err(|e| format!("cannot read the metadata of {name}: {e}"))?;
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .map_or(0, |t| t.partitions().len());
        if found != expected {
            return Err(format!(
                "the Kafka topic {name} has {found} partitions but [cluster] partitions = \
                 {expected}; every node must use the topic's count"
            ));
        }
    }
    Ok(())
}

/// After a degraded start: keeps trying until the topics exist.
pub(super) async fn retry_until_created(
    config: &ClusterConfig,
    names: &[String],
    health: &Arc<Health>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match ensure_topics(config, names).await {
            Ok(()) => {
                tracing::info!("Kafka reachable: cluster topics ready");
                health.set_topics_ready();
                return;
            }
            Err(e) => tracing::debug!(error = %e, "Kafka still unreachable"),
        }
    }
}
