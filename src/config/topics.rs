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
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            anomalies: "tda.anomalies".into(),
            context: "tda.context".into(),
            commands: "orchestration.commands".into(),
            dead_letters: "orchestration.dlq".into(),
        }
    }
}

impl TopicsConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        for (field, name) in [
            ("topics.anomalies", &self.anomalies),
            ("topics.context", &self.context),
            ("topics.commands", &self.commands),
            ("topics.dead_letters", &self.dead_letters),
        ] {
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
