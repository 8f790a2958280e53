//! Routing, first version: agent type, layer and coordination by simple, explained rules.

use crate::model::{AgentType, Coordination, Layer, TdaAnomaly};

use super::score::Scores;

/// Where a command goes and how its agents coordinate.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub workflow: &'static str,
    pub step: &'static str,
    pub agent_type: AgentType,
    pub action: &'static str,
    pub layer: Layer,
    pub coordination: Coordination,
}

pub fn route(anomaly: &TdaAnomaly, scores: &Scores) -> Route {
    let (agent_type, action) = if scores.urgency >= 0.85 {
        (AgentType::Supervisor, "remediate")
    } else if scores.complexity >= 0.5 {
        (AgentType::Analyst, "analyze")
    } else {
        (AgentType::Observer, "collect_telemetry")
    };
    let layer = if scores.urgency >= 0.85 {
        Layer::Strategic
    } else if scores.urgency >= 0.5 {
        Layer::Tactical
    } else {
        Layer::Operational
    };
    // DESIGN.md's order: hierarchical for complex incidents, fan-out when several entities
    // are hit, pipeline otherwise. Consensus needs a pattern confidence: the semantic engine.
    let coordination = if scores.complexity > 0.8 {
        Coordination::Hierarchical
    } else if anomaly.entities.len() > 1 {
        Coordination::FanOut
    } else {
        Coordination::Pipeline
    };
    Route { workflow: "triage", step: "first-response", agent_type, action, layer, coordination }
}
