//! Input tables: `aura.v1.TdaContext` (`tda.context`), `aura.v1.AgentRegistration`
//! (`agent.registry`), `aura.v1.FeatureFlag` (`orchestration.flags`) and the
//! `aura.v1.RoutingFeedback` stream (`orchestration.feedback`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::anomaly::PersistencePoint;
use super::routing::{AgentType, Coordination, Layer};

/// Per-source topological baseline, kept upstream; a compacted table keyed by `source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdaContext {
    pub source: String,
    /// Betti numbers of the source's normal shape.
    pub baseline_betti: Vec<i32>,
    /// A representative persistence diagram of the source's normal shape.
    pub baseline_diagram: Vec<PersistencePoint>,
    pub baseline_entropy: f64,
    pub baseline_total_persistence: f64,
    /// Prior confidence per pattern name for this source, in [0, 1].
    pub pattern_confidence: HashMap<String, f64>,
    /// Business attributes copied onto commands (team, region, tier...).
    pub attributes: HashMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// Whether an agent takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentStatus {
    Available,
    Busy,
    Draining,
    Offline,
}

/// An agent announcing itself; a compacted table keyed by `agent_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRegistration {
    pub agent_id: String,
    pub agent_type: AgentType,
    pub capabilities: Vec<String>,
    /// Commands the agent can work on at once.
    pub capacity: i32,
    pub status: AgentStatus,
    pub updated_at: i64,
}

/// A progressive-rollout switch; a compacted table keyed by `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureFlag {
    pub name: String,
    pub enabled: bool,
    /// Share of keys the flag applies to, in [0, 100].
    pub rollout_percent: f64,
    pub updated_at: i64,
}

/// The confirmed truth about an anomaly, for online learning; keyed by `anomaly_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingFeedback {
    pub anomaly_id: String,
    /// The true pattern, when known.
    pub pattern: Option<String>,
    pub agent_type: Option<AgentType>,
    pub coordination: Option<Coordination>,
    pub layer: Option<Layer>,
    /// The anomaly itself, so prototypes can learn from it without a join.
    pub anomaly: Option<super::anomaly::TdaAnomaly>,
    pub confirmed_by: String,
    pub at: i64,
}
