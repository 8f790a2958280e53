//! Creates the topics the service writes to when they are missing, and checks the ones its
//! state depends on. One admin client serves a whole check: each new client costs a connection
//! and a metadata round trip, which made start-up (and so recovery) half a second slower.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use tracing::{info, warn};

use crate::config::KafkaConfig;

use super::RuntimeError;

/// Ensures each topic exists; an existing topic is left as it is.
/// `topic_config` applies to topics it creates, e.g. `cleanup.policy=compact` for tables.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[&str],
    topic_config: &[(&str, &str)],
) -> Result<(), RuntimeError> {
    let admin = Admin::new(kafka)?;
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|t| admin.new_topic(t, kafka.output_partitions, topic_config))
        .collect();
    admin.create(&new).await
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
    let admin = Admin::new(kafka)?;
    admin
        .create(&[admin.new_topic(reference, kafka.output_partitions, &[])])
        .await?;
    let expected = admin.partition_count(reference)?;
    let compacted = [("cleanup.policy", "compact")];
    let new: Vec<NewTopic> = copartitioned
        .iter()
        .map(|t| admin.new_topic(t, expected as i32, &[]))
        .chain(
            changelogs
                .iter()
                .map(|t| admin.new_topic(t, expected as i32, &compacted)),
        )
        .collect();
    admin.create(&new).await?;
    for topic in copartitioned.iter().chain(changelogs) {
        let found = admin.partition_count(topic)?;
        if found != expected {
            return Err(RuntimeError::NotCopartitioned {
                topic: topic.to_string(),
                found,
                expected,
                reference: reference.to_string(),
            });
        }
    }
    admin.check_compacted(changelogs).await?;
    Ok(expected as i32)
}

/// The partition count of `topic`, created with `partitions` first if it does not exist (as a
/// TDA producer's topic may not yet when Aura starts first).
pub async fn ensure_partitions(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<i32, RuntimeError> {
    let admin = Admin::new(kafka)?;
    admin
        .create(&[admin.new_topic(topic, partitions, &[])])
        .await?;
    Ok(admin.partition_count(topic)? as i32)
}

/// How long start-up waits out a broker that does not answer before giving up.
const BROKER_PATIENCE: Duration = Duration::from_secs(120);

/// A creation round that did not finish: the topics to ask for again (none if the error is
/// final) and the error to report if patience runs out.
struct Unanswered {
    topics: Vec<String>,
    error: RuntimeError,
}

/// Broker conditions that pass by themselves: a stall, a restart, a controller election.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        OperationTimedOut
            | RequestTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | NotController
            | BrokerNotAvailable
            | LeaderNotAvailable
    )
}

/// One admin client, for every step of a check.
struct Admin {
    client: AdminClient<DefaultClientContext>,
    replication: i32,
}

impl Admin {
    fn new(kafka: &KafkaConfig) -> Result<Self, RuntimeError> {
        let client = super::clients::admin(kafka)
            .create()
            .map_err(|e| RuntimeError::Client {
                what: "admin client",
                source: e,
            })?;
        Ok(Self {
            client,
            replication: kafka.replication_factor,
        })
    }

    fn new_topic<'a>(
        &self,
        name: &'a str,
        partitions: i32,
        config: &[(&'a str, &'a str)],
    ) -> NewTopic<'a> {
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(self.replication));
        config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
    }

    /// Creates `topics`; one that exists already is left as it is. A broker that does not answer
    /// (stalled, restarting, electing a controller) is waited for, up to [`BROKER_PATIENCE`], with
    /// a warning each time: an instance started during a broker hiccup comes up when it passes
    /// rather than exiting. Any other refusal (ACLs, a bad topic config) fails at once.
    async fn create(&self, topics: &[NewTopic<'_>]) -> Result<(), RuntimeError> {
        let deadline = std::time::Instant::now() + BROKER_PATIENCE;
        let mut backoff = Duration::from_millis(500);
        let mut pending: Vec<&NewTopic<'_>> = topics.iter().collect();
        loop {
            match self.create_once(&pending).await {
                Ok(()) => return Ok(()),
                Err(Unanswered { topics, error }) if std::time::Instant::now() < deadline => {
                    warn!(error = %error, retry_in_ms = backoff.as_millis() as u64,
                        "the broker did not answer a topic creation; retrying");
                    pending.retain(|t| topics.contains(&t.name.to_string()));
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
                Err(Unanswered { error, .. }) => return Err(error),
            }
        }
    }

    /// One creation round. The topics a transient broker condition left uncreated come back in
    /// [`Unanswered`] to be asked again; any other error is final (empty `topics`).
    async fn create_once(&self, topics: &[&NewTopic<'_>]) -> Result<(), Unanswered> {
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = match self
            .client
            .create_topics(topics.iter().copied(), &opts)
            .await
        {
            Ok(results) => results,
            Err(e) => {
                let transient = e.rdkafka_error_code().is_some_and(is_transient);
                return Err(Unanswered {
                    topics: if transient {
                        topics.iter().map(|t| t.name.to_string()).collect()
                    } else {
                        Vec::new()
                    },
                    error: RuntimeError::Broker {
                        what: "create topics",
                        source: e,
                    },
                });
            }
        };
        let mut retry = Vec::new();
        for (result, new) in results.into_iter().zip(topics) {
            match result {
                Ok(topic) => info!(topic, partitions = new.num_partitions, "created topic"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) if is_transient(code) => retry.push(topic),
                Err((topic, code)) => {
                    return Err(Unanswered {
                        topics: Vec::new(),
                        error: RuntimeError::TopicCreation {
                            topic,
                            reason: code.to_string(),
                        },
                    })
                }
            }
        }
        match retry.first().cloned() {
            None => Ok(()),
            Some(first) => Err(Unanswered {
                topics: retry,
                error: RuntimeError::TopicCreation {
                    topic: first,
                    reason: "the broker did not answer in time".into(),
                },
            }),
        }
    }

    /// The partition count of `topic`. A topic just created (by this instance or another) can
    /// show no partitions for a while, longer on a broker that has just come back from a stall,
    /// so an empty answer is asked again for up to a minute. Still none then is a broker problem,
    /// not a wrong partition count, and is reported as such.
    fn partition_count(&self, topic: &str) -> Result<usize, RuntimeError> {
        let patience = Duration::from_secs(60);
        let deadline = std::time::Instant::now() + patience;
        loop {
            let metadata = self
                .client
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| RuntimeError::Broker {
                    what: "topic metadata",
                    source: e,
                })?;
            let count = metadata
                .topics()
                .first()
                .map_or(0, |t| t.partitions().len());
            if count > 0 {
                return Ok(count);
            }
            if std::time::Instant::now() > deadline {
                return Err(RuntimeError::NoPartitionsVisible {
                    topic: topic.to_string(),
                    waited_s: patience.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    async fn check_compacted(&self, topics: &[&str]) -> Result<(), RuntimeError> {
        use rdkafka::admin::{OwnedResourceSpecifier, ResourceSpecifier};
        let specs: Vec<ResourceSpecifier> =
            topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let results = self
            .client
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
}
