//! Topic names. The defaults are DESIGN.md's; every one can be renamed.

use serde::Deserialize;

use super::Problem;

/// The `[topics]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Input: TDA anomalies, keyed by correlation key.
    pub anomalies: String,
    /// Input, compacted table: per-source TDA baselines, keyed by source id.
    pub context: String,
    /// Output: agent commands, keyed by saga id.
    pub commands: String,
    /// Output: records that could not be processed, with their reason.
    pub dead_letters: String,
    /// Input: agents' answers to commands, keyed by saga id (read when sagas are enabled).
    pub agent_results: String,
    /// Input: agents' votes for consensus steps, keyed like results by the ballot's
    /// `partition_key` (the correlation key). Created co-partitioned with `agent_results`.
    pub agent_votes: String,
    /// Output: the saga lifecycle, keyed by saga id.
    pub sagas: String,
    /// Output: compensation commands, keyed by saga id.
    pub compensations: String,
    /// Output: escalations to a higher layer, keyed by saga id.
    pub escalations: String,
    /// Output: anomalies that joined an incident without a command of their own, keyed by
    /// incident id.
    pub correlations: String,
    /// Output: consensus decisions, keyed by saga id.
    pub decisions: String,
    /// Input, compacted table: agent registrations, keyed by agent id.
    pub registry: String,
    /// Input, compacted table: feature flags, keyed by flag name.
    pub flags: String,
    /// Input: confirmed `RoutingFeedback`, keyed by anomaly id; the pattern library learns from it.
    pub feedback: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            anomalies: "tda.anomalies".into(),
            context: "tda.context".into(),
            commands: "orchestration.commands".into(),
            dead_letters: "orchestration.dlq".into(),
            agent_results: "agent.results".into(),
            agent_votes: "agent.votes".into(),
            sagas: "orchestration.sagas".into(),
            compensations: "orchestration.compensations".into(),
            escalations: "orchestration.escalations".into(),
            correlations: "orchestration.correlations".into(),
            decisions: "orchestration.decisions".into(),
            registry: "agent.registry".into(),
            flags: "orchestration.flags".into(),
            feedback: "orchestration.feedback".into(),
        }
    }
}

impl TopicsConfig {
    /// Every named topic with its config field, in declaration order. The service makes sure
    /// each one exists at start-up (`deploy/kafka-acls.sh` grants it Create on all of them).
    pub fn all(&self) -> [(&'static str, &str); 14] {
        [
            ("topics.anomalies", &self.anomalies),
            ("topics.context", &self.context),
            ("topics.commands", &self.commands),
            ("topics.dead_letters", &self.dead_letters),
            ("topics.agent_results", &self.agent_results),
            ("topics.agent_votes", &self.agent_votes),
            ("topics.sagas", &self.sagas),
            ("topics.compensations", &self.compensations),
            ("topics.escalations", &self.escalations),
            ("topics.correlations", &self.correlations),
            ("topics.decisions", &self.decisions),
            ("topics.registry", &self.registry),
            ("topics.flags", &self.flags),
            ("topics.feedback", &self.feedback),
        ]
    }

    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        for (field, name) in self.all() {
            let legal = !name.is_empty()
                && name.len() <= 249
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !legal {
                problems.push(Problem::new(
                    field,
                    name,
                    "must be a legal Kafka topic name (1-249 of [a-zA-Z0-9._-])",
                ));
            }
        }
    }
}

/// The internal topics of one application (`group.id`), named as Kafka Streams names them.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalTopics {
    /// Anomalies re-keyed by correlation key, co-partitioned with the incident tasks' other
    /// inputs (docs/KEYS.md).
    pub rekey: String,
    group_id: String,
}

impl InternalTopics {
    pub fn new(group_id: &str) -> Self {
        Self {
            rekey: format!("{group_id}-anomalies-repartition"),
            group_id: group_id.to_string(),
        }
    }

    /// The compacted changelog of `store`.
    pub fn changelog(&self, store: &str) -> String {
        format!("{}-{store}-changelog", self.group_id)
    }
}
