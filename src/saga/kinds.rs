//! The coordination step kinds, as declared in a workflow file. A step is a **task** (one agent,
//! one command) unless it carries exactly one of these tables:
//!
//! - `fan_out`: a crew; commands go to several agents at once and a join policy closes the step;
//! - `consensus`: agents vote on a question; the decision picks the next edge;
//! - `supervisor`: a supervisor's plan is fanned out as sub-tasks, joined, and handed back to it;
//! - `escalate`: the incident moves one layer up, under that layer's policy (and approval).
//!
//! Checks serde cannot make are in [`super::validate_kinds`].

use serde::{Deserialize, Serialize};

use crate::model::{AgentType, Layer};

/// The attribute of a ballot command listing the options, comma-separated.
pub const OPTIONS_ATTRIBUTE: &str = "vote.options";

/// The attribute of a supervisor's plan request giving the most sub-tasks it may plan.
pub const PLAN_ATTRIBUTE: &str = "plan.max_subtasks";

/// The most branches, ballots or sub-tasks one step may have: each is a few dozen bytes of saga
/// state, and a saga must stay under 2 KB.
pub const MAX_BRANCHES: usize = 8;

/// A fan-out: the same step run by a crew, closed by a join policy within the step's `timeout_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FanOutSpec {
    /// The crew, one branch per entry. Exclusive with `count`.
    #[serde(default)]
    pub branches: Vec<BranchSpec>,
    /// N branches of the step's `agent_type`, each running the step's `action`. Exclusive with
    /// `branches`.
    #[serde(default)]
    pub count: Option<usize>,
    /// `all`, `any` or `quorum(k)`: how many branches must succeed for the step to succeed.
    pub join: String,
}

/// One branch of a crew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchSpec {
    /// The agent type commanded.
    pub agent_type: AgentType,
    /// What this branch's agent is asked to do; defaults to the step's `action`.
    #[serde(default)]
    pub action: Option<String>,
}

/// How many successes close a fan-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    All,
    Any,
    Quorum(usize),
}

impl Join {
    /// Parses `all`, `any` or `quorum(k)` (k >= 1).
    pub fn parse(text: &str) -> Option<Join> {
        match text.trim() {
            "all" => Some(Join::All),
            "any" => Some(Join::Any),
            t => t
                .strip_prefix("quorum(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|k| k.trim().parse().ok())
                .filter(|k| *k >= 1)
                .map(Join::Quorum),
        }
    }

    /// Successes needed out of `n` branches.
    pub fn needed(self, n: usize) -> usize {
        match self {
            Join::All => n,
            Join::Any => 1.min(n),
            Join::Quorum(k) => k,
        }
    }
}

/// A vote: ballots to the voters, a decision when the outcome is sure or at the deadline (the
/// step's `timeout_ms`). The step's edges read the output key `decision` (the winning option).
/// A tie or a missing quorum emits an escalation and goes to `on_escalate` (or fails the step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusSpec {
    /// What the voters choose between; a vote for anything else is not counted.
    pub options: Vec<String>,
    /// The voters, one ballot each. Exclusive with `count`.
    #[serde(default)]
    pub voters: Vec<VoterSpec>,
    /// N ballots to the step's `agent_type`. Exclusive with `voters`.
    #[serde(default)]
    pub count: Option<usize>,
    /// Votes needed for a decision; fewer by the deadline is NO_QUORUM.
    pub quorum: usize,
    /// How a vote is weighted.
    #[serde(default)]
    pub weights: Weighting,
    /// The largest weight one vote may claim (`weights = "confidence"`).
    #[serde(default = "one")]
    pub max_weight: f64,
    /// The step taken after a tie or a missing quorum; `None` fails the step (and so the saga,
    /// as `on_failure` says).
    #[serde(default)]
    pub on_escalate: Option<String>,
}

fn one() -> f64 {
    1.0
}

/// One voter of a consensus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterSpec {
    /// The agent type asked to vote.
    pub agent_type: AgentType,
    /// The weight declared for this voter (`weights = "declared"`).
    #[serde(default = "one")]
    pub weight: f64,
}

/// Where a vote's weight comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Every vote weighs 1.
    #[default]
    Equal,
    /// The voter's `weight` in the workflow.
    Declared,
    /// The voter's layer: an observer 1, an analyst 2, a supervisor 3.
    Layer,
    /// The weight the vote claims (the agent's routing confidence), capped at `max_weight`.
    Confidence,
}

/// A supervisor: the step's command asks the supervisor for a plan; its result's `plan` output
/// lists sub-tasks (`AGENT_TYPE:action;...`), which are fanned out, joined, and handed back to
/// the supervisor as one more command (`final_action`), whose output picks the next edge.
/// Each phase has the step's `timeout_ms`; the step's compensation undoes each sub-task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorSpec {
    /// The most sub-tasks a plan may list; a longer plan fails the planning attempt.
    pub max_subtasks: usize,
    /// `all`, `any` or `quorum(k)` over the sub-tasks.
    #[serde(default = "all")]
    pub join: String,
    /// What the supervisor is asked to do with the sub-tasks' results.
    pub final_action: String,
}

fn all() -> String {
    "all".into()
}

/// An escalation: the saga moves one layer up (a strategic saga stays strategic) and the new
/// layer's policy runs the step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalateSpec {
    /// The policy when the saga moves to the tactical layer.
    pub tactical: LayerPolicy,
    /// The policy when the saga moves to (or stays at) the strategic layer.
    pub strategic: LayerPolicy,
}

impl EscalateSpec {
    pub fn policy(&self, layer: Layer) -> &LayerPolicy {
        match layer {
            Layer::Strategic => &self.strategic,
            _ => &self.tactical,
        }
    }
}

/// One layer's way of taking an escalated incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerPolicy {
    /// The agent type (or the person behind it) the incident is handed to.
    pub agent_type: AgentType,
    /// What it is asked to do.
    pub action: String,
    /// How long it has, in milliseconds.
    pub timeout_ms: i64,
    /// When true, the next step runs only after an approving result (`approved = "true"`); the
    /// step's output `approval` is `approved` or `rejected`, and a timeout counts as `on_timeout`.
    /// When false, the handed-over command is a task: it is retried and its output picks the edge.
    #[serde(default)]
    pub approval: bool,
    /// The approval's outcome when nobody answers in time: `approved` or `rejected`.
    #[serde(default)]
    pub on_timeout: Option<String>,
}

/// The layer one up from `layer`.
pub fn layer_above(layer: Layer) -> Layer {
    match layer {
        Layer::Operational => Layer::Tactical,
        Layer::Tactical | Layer::Strategic => Layer::Strategic,
    }
}

/// Which kind a step is, from the table it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Task,
    FanOut,
    Consensus,
    Supervisor,
    Escalate,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::FanOut => "fan_out",
            Self::Consensus => "consensus",
            Self::Supervisor => "supervisor",
            Self::Escalate => "escalate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_policies_parse_and_say_how_many_must_succeed() {
        assert_eq!(Join::parse("all").map(|j| j.needed(3)), Some(3));
        assert_eq!(Join::parse("any").map(|j| j.needed(3)), Some(1));
        assert_eq!(Join::parse("quorum(2)"), Some(Join::Quorum(2)));
        for bad in ["most", "quorum(0)", "quorum(x)", "quorum 2", ""] {
            assert_eq!(Join::parse(bad), None, "{bad}");
        }
    }
}
