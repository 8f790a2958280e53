//! Output commands: `aura.v1.AgentCommand` (`orchestration.commands`) and
//! `aura.v1.CompensationCommand` (`orchestration.compensations`), keyed by the correlation key and by `saga_id`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::routing::{AgentType, Coordination, Layer};

/// An instruction to an agent to run one workflow step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCommand {
    /// Unique per step attempt, so agents can de-duplicate redeliveries.
    pub command_id: String,
    pub saga_id: String,
    pub correlation_id: String,
    /// The anomalies that led to this command.
    pub anomaly_ids: Vec<String>,
    pub workflow: String,
    pub step: String,
    pub agent_type: AgentType,
    pub action: String,
    pub layer: Layer,
    pub coordination: Coordination,
    /// The matched incident pattern; `None` when unknown (triage).
    pub pattern_id: Option<String>,
    /// In [0, 1].
    pub urgency: f64,
    /// In [0, 1].
    pub complexity: f64,
    /// Starts at 1.
    pub attempt: i32,
    /// Milliseconds since the Unix epoch.
    pub deadline: i64,
    /// Why this route was chosen: the pattern, the score parts and the rule that fired.
    pub explanation: String,
    /// Business attributes copied from the source context.
    pub attributes: HashMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub issued_at: i64,
    /// The key of the agent's answer (result or vote): the incident's correlation key, so the
    /// answer lands in the partition that holds the saga (docs/KEYS.md).
    #[serde(default)]
    pub partition_key: String,
}

/// An instruction to undo a completed step; a failed saga issues these in reverse step order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompensationCommand {
    pub command_id: String,
    pub saga_id: String,
    pub correlation_id: String,
    /// The command whose effect is undone.
    pub compensates_command_id: String,
    pub step: String,
    pub agent_type: AgentType,
    pub action: String,
    /// Starts at 1; a failed compensation is retried before COMPENSATION_FAILED.
    pub attempt: i32,
    /// Why the saga is being compensated.
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub issued_at: i64,
    /// The key of the agent's answer, as on [`AgentCommand::partition_key`].
    #[serde(default)]
    pub partition_key: String,
}
