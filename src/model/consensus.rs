//! Consensus voting: `aura.v1.AgentVote` in (`agent.votes`, keyed like results by the ballot's
//! `partition_key`) and `aura.v1.ConsensusDecision` out (`orchestration.decisions`, keyed by
//! `saga_id`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::routing::AgentType;

/// One agent's vote in a consensus step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVote {
    /// A repeated vote id is ignored.
    pub vote_id: String,
    pub saga_id: String,
    pub step: String,
    pub agent_id: String,
    pub agent_type: AgentType,
    pub choice: String,
    /// Claimed weight; the step's configuration may cap it.
    pub weight: f64,
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub cast_at: i64,
    /// Signature and incarnation (`src/auth/`); `None` when unsigned.
    #[serde(default)]
    pub proof: Option<super::Proof>,
}

impl AgentVote {
    /// An unsigned vote on `ballot`: its id, saga, step and agent type, with no reason.
    pub fn on(
        ballot: &super::AgentCommand,
        agent_id: impl Into<String>,
        choice: impl Into<String>,
        weight: f64,
        cast_at: i64,
    ) -> Self {
        Self {
            vote_id: ballot.command_id.clone(),
            saga_id: ballot.saga_id.clone(),
            step: ballot.step.clone(),
            agent_id: agent_id.into(),
            agent_type: ballot.agent_type,
            choice: choice.into(),
            weight,
            reason: String::new(),
            cast_at,
            proof: None,
        }
    }
}

/// How a consensus step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsensusOutcome {
    Agreed,
    /// The top options have equal weight; the saga escalates.
    Tied,
    /// The deadline passed before enough votes arrived; the saga escalates.
    NoQuorum,
}

/// The outcome of a consensus step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusDecision {
    pub decision_id: String,
    pub saga_id: String,
    pub correlation_id: String,
    pub step: String,
    pub outcome: ConsensusOutcome,
    /// The winning option; `None` unless `outcome` is `Agreed`.
    pub choice: Option<String>,
    /// Total weight per option.
    pub tally: HashMap<String, f64>,
    pub votes_cast: i32,
    pub quorum: i32,
    /// Agent ids whose votes were counted.
    pub voters: Vec<String>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
