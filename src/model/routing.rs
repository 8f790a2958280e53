//! The vocabulary of routing decisions, shared by commands, feedback and the agent registry.

use serde::{Deserialize, Serialize};

/// The kind of downstream agent a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentType {
    Observer,
    Analyst,
    Supervisor,
}

/// The decision layer a command belongs to; escalation moves upward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Layer {
    Operational,
    Tactical,
    Strategic,
}

/// How the agents working on one saga coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Coordination {
    Pipeline,
    FanOut,
    Consensus,
    Hierarchical,
}
