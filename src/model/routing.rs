//! The vocabulary of routing decisions, shared by commands, feedback and the agent registry.

use serde::{Deserialize, Serialize};

/// The kind of downstream agent a command is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AgentType {
    OBSERVER,
    ANALYST,
    SUPERVISOR,
}

/// The decision layer a command belongs to; escalation moves upward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Layer {
    OPERATIONAL,
    TACTICAL,
    STRATEGIC,
}

/// How the agents working on one saga coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Coordination {
    PIPELINE,
    FAN_OUT,
    CONSENSUS,
    HIERARCHICAL,
}
