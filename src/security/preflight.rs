//! The start-up check of Aura's own Kafka permissions. Kafka answers a missing ACL with a bare
//! "authorization failed" at the first request that needs it, often deep in a rebalance; this
//! check asks first and names every missing ACL at once, as `deploy/kafka-acls.sh` grants them.
//!
//! It checks what can be checked without writing anything: Describe on every topic Aura reads or
//! writes (a metadata request), Read on its consumer group (an offset fetch), and Write on its
//! transactional ids (initialising a producer under `<group.id>-<instance>-acl-check`). Read,
//! Write and Create on a topic surface at first use, with Kafka's error naming the topic.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;
use tracing::info;

use super::kafka::client_config;
use crate::config::{Config, ProcessingGuarantee};

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "the Kafka principal {principal} lacks {} ACL(s):\n{}\nGrant them with deploy/kafka-acls.sh (README \"Security\"), or ask the cluster's operators",
        lacks.len(),
        lacks.iter().map(|l| format!("  - {l}")).collect::<Vec<_>>().join("\n")
    )]
    MissingAcls {
        principal: String,
        lacks: Vec<String>,
    },
    #[error("cannot check the Kafka ACLs: {0}")]
    Kafka(#[from] KafkaError),
}

/// True when the clients authenticate, so the broker may enforce ACLs on a named principal.
pub fn authenticates(config: &Config) -> bool {
    let protocol = config
        .kafka
        .security
        .properties
        .get("security.protocol")
        .or_else(|| config.kafka.properties.get("security.protocol"))
        .map(|p| p.to_ascii_uppercase());
    matches!(
        protocol.as_deref(),
        Some("SASL_SSL" | "SASL_PLAINTEXT" | "SSL")
    )
}

fn principal(config: &Config) -> String {
    config
        .kafka
        .security
        .properties
        .get("sasl.username")
        .or_else(|| config.kafka.properties.get("sasl.username"))
        .map_or_else(|| "of this client".to_owned(), |u| format!("User:{u}"))
}

/// Every topic Aura reads or writes, as the topology declares them: inputs first, then
/// outputs, then the votes topic it creates, then the store changelogs.
fn topics(config: &Config) -> Vec<String> {
    let topology = crate::topology::Topology::new(config);
    let mut topics: Vec<String> = topology.inputs.iter().map(|i| i.topic.clone()).collect();
    for o in &topology.outputs {
        if !topics.contains(&o.topic) {
            topics.push(o.topic.clone());
        }
    }
    // Votes are a declared input when sagas are on; with sagas off Aura still creates the topic.
    if !topics.contains(&config.topics.agent_votes) {
        topics.push(config.topics.agent_votes.clone());
    }
    topics.extend(topology.changelogs());
    topics
}

/// Checks Aura's ACLs when its clients authenticate; a no-op otherwise.
pub async fn check(config: &Config, instance_id: &str) -> Result<(), PreflightError> {
    if !authenticates(config) {
        return Ok(());
    }
    let config = config.clone();
    let instance_id = instance_id.to_owned();
    // librdkafka's calls here block; keep them off the async workers.
    tokio::task::spawn_blocking(move || check_blocking(&config, &instance_id))
        .await
        .expect("the ACL check does not panic")
}

fn check_blocking(config: &Config, instance_id: &str) -> Result<(), PreflightError> {
    let mut lacks = Vec::new();
    let consumer: BaseConsumer = client_config(&config.kafka)
        .set("group.id", &config.kafka.group_id)
        .set("allow.auto.create.topics", "false")
        .create()?;
    let mut readable = None;
    for topic in topics(config) {
        let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
        let Some(found) = metadata.topics().first() else {
            continue;
        };
        match found.error() {
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) => {
                lacks.push(format!("Describe on topic {topic}"));
            }
            None if readable.is_none() && topic == config.topics.anomalies => {
                readable = Some(topic.clone());
            }
            _ => {}
        }
    }
    if let Some(topic) = readable {
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&topic, 0);
        match consumer.committed_offsets(partitions, TIMEOUT) {
            Err(KafkaError::OffsetFetch(RDKafkaErrorCode::GroupAuthorizationFailed)) => {
                lacks.push(format!(
                    "Read on group {} (prefixed: also -tables and -restore)",
                    config.kafka.group_id
                ));
            }
            Err(KafkaError::OffsetFetch(RDKafkaErrorCode::TopicAuthorizationFailed)) => {
                lacks.push(format!("Describe on topic {topic}"));
            }
            _ => {}
        }
    }
    if config.kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
        let id = format!("{}-{instance_id}-acl-check", config.kafka.group_id);
        let producer: BaseProducer = client_config(&config.kafka)
            .set("transactional.id", &id)
            .create()?;
        match producer.init_transactions(TIMEOUT) {
            Err(KafkaError::Transaction(e))
                if e.code() == RDKafkaErrorCode::TransactionalIdAuthorizationFailed =>
            {
                lacks.push(format!(
                    "Write on transactional id {}- (prefixed)",
                    config.kafka.group_id
                ));
            }
            Err(KafkaError::Transaction(e))
                if e.code() == RDKafkaErrorCode::ClusterAuthorizationFailed =>
            {
                lacks.push("IdempotentWrite on the cluster".to_owned());
            }
            _ => {}
        }
    }
    if lacks.is_empty() {
        info!(principal = %principal(config), "kafka ACLs checked");
        Ok(())
    } else {
        Err(PreflightError::MissingAcls {
            principal: principal(config),
            lacks,
        })
    }
}

/// Logs, once at start-up, how this instance is secured: names and kinds, never a secret.
pub fn log_posture(config: &Config) {
    let setting = |name: &str| {
        config
            .kafka
            .security
            .properties
            .get(name)
            .or_else(|| config.kafka.properties.get(name))
            .cloned()
            .unwrap_or_else(|| "-".to_owned())
    };
    let registry = match config.schema_registry.access() {
        None => "embedded catalog",
        Some(a) => match a.auth {
            super::RegistryAuth::None => "no auth",
            super::RegistryAuth::Basic { .. } => "basic auth",
            super::RegistryAuth::Bearer(_) => "bearer token",
        },
    };
    info!(
        security_protocol = %setting("security.protocol"),
        sasl_mechanism = %setting("sasl.mechanism"),
        principal = %principal(config),
        kafka_secrets = config.kafka.security.secrets.len(),
        registry,
        agent_auth = config.agent_auth.loaded.is_some(),
        http_token = config.http.resolved_token.is_some(),
        "security settings"
    );
}
