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
    let admin = admin_client(kafka)?;
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

/// Ensures `reference` exists, then that every topic in `copartitioned` and every compacted
/// store changelog in `changelogs` has exactly its partition count, creating missing ones.
/// An existing topic with another count, or a changelog that is not compacted, is refused.
/// Returns the partition count they share.
pub async fn ensure_copartitioned(
    kafka: &KafkaConfig,
    reference: &str,
    copartitioned: &[&str],
    changelogs: &[&str],
) -> Result<i32, RuntimeError> {
    ensure_topics(kafka, &[reference], &[]).await?;
    let expected = partition_count(kafka, reference)?;
    let same = KafkaConfig {
        output_partitions: expected as i32,
        ..kafka.clone()
    };
    ensure_topics(&same, copartitioned, &[]).await?;
    ensure_topics(&same, changelogs, &[("cleanup.policy", "compact")]).await?;
    for topic in copartitioned.iter().chain(changelogs) {
        let found = partition_count(kafka, topic)?;
        if found != expected {
            return Err(RuntimeError::NotCopartitioned {
                topic: topic.to_string(),
                found,
                expected,
                reference: reference.to_string(),
            });
        }
    }
    check_compacted(kafka, changelogs).await?;
    Ok(expected as i32)
}

/// The partition count of `topic`. A topic another instance has just created can show no
/// partitions for a moment, so an empty answer is asked again for up to ten seconds.
fn partition_count(kafka: &KafkaConfig, topic: &str) -> Result<usize, RuntimeError> {
    let consumer: rdkafka::consumer::BaseConsumer =
        super::clients::admin(kafka)
            .create()
            .map_err(|e| RuntimeError::Client {
                what: "metadata client",
                source: e,
            })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metadata = rdkafka::consumer::Consumer::fetch_metadata(
            &consumer,
            Some(topic),
            Duration::from_secs(10),
        )
        .map_err(|e| RuntimeError::Broker {
            what: "topic metadata",
            source: e,
        })?;
        let count = metadata
            .topics()
            .first()
            .map_or(0, |t| t.partitions().len());
        if count > 0 || std::time::Instant::now() > deadline {
            return Ok(count);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn check_compacted(kafka: &KafkaConfig, topics: &[&str]) -> Result<(), RuntimeError> {
    use rdkafka::admin::{OwnedResourceSpecifier, ResourceSpecifier};
    let admin = admin_client(kafka)?;
    let specs: Vec<ResourceSpecifier> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = admin
        .describe_configs(&specs, &AdminOptions::new())
        .await
        .map_err(|e| RuntimeError::Broker {
            what: "describe configs",
            source: e,
        })?;
    for result in results {
        let Ok(resource) = result else { continue };
        let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else {
            continue;
        };
        let policy = resource
            .get("cleanup.policy")
            .and_then(|e| e.value.clone())
            .unwrap_or_default();
        if !policy.contains("compact") {
            return Err(RuntimeError::NotCompacted {
                topic: topic.clone(),
                found: policy,
            });
        }
    }
    Ok(())
}

fn admin_client(kafka: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, RuntimeError> {
    super::clients::admin(kafka)
        .create()
        .map_err(|e| RuntimeError::Client {
            what: "admin client",
            source: e,
        })
}
