//! Creates the topics the service writes to when they are missing.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tracing::info;

use crate::config::KafkaConfig;

use super::RuntimeError;

/// Ensures each topic exists; an existing topic is left as it is.
/// `topic_config` applies to topics it creates, e.g. `cleanup.policy=compact` for tables.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[&str],
    topic_config: &[(&str, &str)],
) -> Result<(), RuntimeError> {
    let admin: AdminClient<DefaultClientContext> =
        super::clients::admin(kafka)
            .create()
            .map_err(|e| RuntimeError::Client {
                what: "admin client",
                source: e,
            })?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| {
            topic_config.iter().fold(
                NewTopic::new(
                    t,
                    kafka.output_partitions,
                    TopicReplication::Fixed(kafka.replication_factor),
                ),
                |topic, (k, v)| topic.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| RuntimeError::Broker {
            what: "create topics",
            source: e,
        })?;
    for result in results {
        match result {
            Ok(topic) => info!(topic, partitions = kafka.output_partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(RuntimeError::TopicCreation {
                    topic,
                    reason: code.to_string(),
                })
            }
        }
    }
    Ok(())
}
