//! Kafka client and processing settings, named as in Kafka Streams.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::Problem;
use crate::security::{ResolvedKafkaSecurity, SecretSource};

/// How outputs and input offsets are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingGuarantee {
    /// Outputs and input offsets are committed in one Kafka transaction; read_committed
    /// consumers see every output exactly once, after the commit.
    #[serde(rename = "exactly_once_v2")]
    #[value(name = "exactly_once_v2")]
    ExactlyOnceV2,
    /// An input offset is committed only after its outputs are acknowledged by the broker;
    /// outputs may repeat after a crash, never go missing. The lowest latency.
    #[value(name = "at_least_once")]
    AtLeastOnce,
}

impl fmt::Display for ProcessingGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ExactlyOnceV2 => "exactly_once_v2",
            Self::AtLeastOnce => "at_least_once",
        })
    }
}

/// The `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Brokers to bootstrap from, `host:port[,host:port...]`.
    #[serde(rename = "bootstrap.servers", default = "default_bootstrap")]
    pub bootstrap_servers: String,
    /// Consumer group and application id. Instances sharing it split the partitions, and it
    /// prefixes internal topics and the transactional id.
    #[serde(rename = "group.id", default = "default_group")]
    pub group_id: String,
    /// `exactly_once_v2` (default) or `at_least_once`.
    #[serde(rename = "processing.guarantee", default = "default_guarantee")]
    pub processing_guarantee: ProcessingGuarantee,
    /// How often, in milliseconds, outputs and offsets are committed. Small, because
    /// read_committed consumers see outputs only after a commit.
    #[serde(rename = "commit.interval.ms", default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    /// Partitions for the output topics the service creates when they are missing.
    #[serde(rename = "output.partitions", default = "default_partitions")]
    pub output_partitions: i32,
    /// Replication factor for the output topics the service creates.
    #[serde(rename = "replication.factor", default = "default_replication")]
    pub replication_factor: i32,
    /// Kafka's static membership (KIP-345): the consumer joins as `group.instance.id` =
    /// `<group.id>-<instance id>`. An instance restarted within `session.timeout.ms` gets its
    /// partitions back at once, with no rebalance; an instance that is gone for good keeps its
    /// partitions unserved until the session times out. Off by default.
    #[serde(rename = "static.membership", default)]
    pub static_membership: bool,
    /// Extra librdkafka properties for every client, e.g. `"security.protocol" = "SSL"`.
    /// Secrets are refused here; they belong in `secrets`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (`sasl.password`, `ssl.key.password`),
    /// each read at start-up from `{ file = "PATH" }` or `{ env = "VAR" }`, never written here.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// The environment's `AURA_KAFKA_*` settings and the secrets, read during validation.
    #[serde(skip)]
    pub security: ResolvedKafkaSecurity,
}

fn default_bootstrap() -> String {
    "localhost:9092".into()
}
fn default_group() -> String {
    "aura".into()
}
fn default_guarantee() -> ProcessingGuarantee {
    ProcessingGuarantee::ExactlyOnceV2
}
fn default_commit_interval() -> u64 {
    5
}
fn default_partitions() -> i32 {
    6
}
fn default_replication() -> i32 {
    1
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: default_bootstrap(),
            group_id: default_group(),
            processing_guarantee: default_guarantee(),
            commit_interval_ms: default_commit_interval(),
            output_partitions: default_partitions(),
            replication_factor: default_replication(),
            static_membership: false,
            properties: BTreeMap::new(),
            secrets: BTreeMap::new(),
            security: ResolvedKafkaSecurity::default(),
        }
    }
}

impl KafkaConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        let servers_ok = !self.bootstrap_servers.trim().is_empty()
            && self
                .bootstrap_servers
                .split(',')
                .all(|s| s.trim().rsplit_once(':').is_some());
        if !servers_ok {
            problems.push(Problem::new(
                "kafka.bootstrap.servers",
                &self.bootstrap_servers,
                "must be host:port[,host:port...]",
            ));
        }
        let id_ok = !self.group_id.is_empty()
            && self
                .group_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !id_ok {
            problems.push(Problem::new(
                "kafka.group.id",
                &self.group_id,
                "must be non-empty ASCII letters, digits, '.', '_' or '-'",
            ));
        }
        if self.commit_interval_ms == 0 {
            problems.push(Problem::new("kafka.commit.interval.ms", 0, "must be > 0"));
        }
        if self.output_partitions < 1 {
            problems.push(Problem::new(
                "kafka.output.partitions",
                self.output_partitions,
                "must be >= 1",
            ));
        }
        if self.replication_factor < 1 {
            problems.push(Problem::new(
                "kafka.replication.factor",
                self.replication_factor,
                "must be >= 1",
            ));
        }
    }
}
