//! `aura.v1.AgentResult`: agents report each command's outcome on `agent.results`, keyed by `saga_id`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::routing::AgentType;

/// Outcome of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultStatus {
    Succeeded,
    Failed,
}

/// An agent reporting the outcome of one command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentResult {
    pub command_id: String,
    pub saga_id: String,
    pub correlation_id: String,
    /// Copied from the command.
    pub step: String,
    /// Copied from the command; a result for an older attempt is stale.
    pub attempt: i32,
    pub agent_id: String,
    /// Checked against the step's agent type: results from agents not allowed to answer are rejected.
    pub agent_type: AgentType,
    pub status: ResultStatus,
    /// Step output; conditional workflow edges read it.
    pub output: HashMap<String, String>,
    /// Why the command failed; `None` when it succeeded.
    pub error: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub finished_at: i64,
    /// Signature and incarnation (`src/auth/`); `None` when unsigned.
    #[serde(default)]
    pub proof: Option<super::Proof>,
}
