//! Workflow definitions (`topologies/workflows/*.toml`) and the engine's own settings.
//!
//! A file holds one or more `[workflows.<name>]` tables. Each workflow is a DAG of steps: the first
//! step listed is the entry, and each step's `next` edges pick its successor from the step's output.
//! Parsing is strict (`deny_unknown_fields`); everything serde cannot check is in
//! [`super::validate`], which reports every problem at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::AgentType;

use super::kinds::{ConsensusSpec, EscalateSpec, FanOutSpec, StepKind, SupervisorSpec};

/// One workflow file: `[workflows.<name>]` tables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// The workflows declared in this file, by name. Names are unique across all files.
    pub workflows: BTreeMap<String, WorkflowSpec>,
}

/// A workflow: a graph of steps run by agents, with a rule for what a final failure means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Filled in from the table key; never written in the file.
    #[serde(skip)]
    pub name: String,
    /// What the workflow is for, shown by `aura topology graph`.
    #[serde(default)]
    pub description: String,
    /// What happens when a step's last attempt fails.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// The steps; the first one is where every saga starts.
    pub steps: Vec<StepSpec>,
}

/// What a saga does once a step has used up its attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Undo the completed steps in reverse order and end COMPENSATED.
    #[default]
    Compensate,
    /// End FAILED at once, leaving completed steps as they are.
    Fail,
}

/// One step: a command to one agent type (a task), with its timeout, retries and undo action;
/// or, with one of the `fan_out`, `consensus`, `supervisor`, `escalate` tables, a coordination
/// step ([`super::kinds`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique within the workflow; letters, digits, `-`, `_` and `.` (it is part of command ids).
    pub name: String,
    /// The agent type commanded, and the only one whose results are accepted. Required for tasks
    /// and supervisors, and for a fan-out or consensus that gives a `count`; unused by `escalate`.
    #[serde(default)]
    pub agent_type: Option<AgentType>,
    /// What the agent is asked to do (free text the agents understand). Unused by `escalate`,
    /// whose layers say.
    #[serde(default)]
    pub action: String,
    /// How long one attempt may take before it counts as failed, in milliseconds; a fan-out's
    /// join deadline, a consensus's voting deadline, each phase of a supervisor. Unused by
    /// `escalate`, whose layers say.
    #[serde(default)]
    pub timeout_ms: i64,
    /// How failed or timed-out attempts are retried.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// How to undo this step when a later step fails; `None` means nothing to undo.
    #[serde(default)]
    pub compensation: Option<CompensationSpec>,
    /// Where to go after success, first match wins; empty means the workflow completes here.
    #[serde(default)]
    pub next: Vec<Edge>,
    /// A crew: several agents at once, closed by a join policy.
    #[serde(default)]
    pub fan_out: Option<FanOutSpec>,
    /// A vote among agents; the decision picks the edge.
    #[serde(default)]
    pub consensus: Option<ConsensusSpec>,
    /// A supervisor's plan, fanned out as sub-tasks and handed back.
    #[serde(default)]
    pub supervisor: Option<SupervisorSpec>,
    /// The incident moves one layer up, under that layer's policy.
    #[serde(default)]
    pub escalate: Option<EscalateSpec>,
}

/// Exponential backoff: attempt `n` fails, the retry waits
/// `min(initial_interval_ms * multiplier^(n-1), max_interval_ms)`, spread by `jitter`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// The wait before the second attempt, in milliseconds.
    pub initial_interval_ms: i64,
    /// Growth of the wait per attempt; at least 1.
    pub multiplier: f64,
    /// The longest wait, in milliseconds.
    pub max_interval_ms: i64,
    /// Attempts in total, the first included; 1 means no retry.
    pub max_attempts: i32,
    /// Fraction in [0, 1] by which each wait is spread up or down, so retries of many sagas do not
    /// arrive together. Derived from a hash of (saga, step, attempt), so a replay computes the same.
    #[serde(default)]
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_interval_ms: 1_000,
            multiplier: 2.0,
            max_interval_ms: 30_000,
            max_attempts: 3,
            jitter: 0.1,
        }
    }
}

/// The action that undoes a completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompensationSpec {
    /// What the agent is asked to do to undo the step.
    pub action: String,
    /// The agent type commanded; defaults to the step's.
    #[serde(default)]
    pub agent_type: Option<AgentType>,
    /// How long one compensation attempt may take, in milliseconds; defaults to the step's timeout.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Attempts in total before COMPENSATION_FAILED; defaults to the step's `retry.max_attempts`.
    /// Retries wait as the step's retry policy says.
    #[serde(default)]
    pub max_attempts: Option<i32>,
}

/// A directed edge to the next step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The name of the step to run next.
    pub to: String,
    /// Taken only when this holds on the step's output; `None` is the default edge.
    #[serde(default)]
    pub when: Option<Condition>,
    /// How many times a saga may take this edge; required on an edge that closes a loop. Once
    /// used up, the edge is passed over as if its condition did not hold.
    #[serde(default)]
    pub max_times: Option<u32>,
}

/// A test on one key of a step's output map. Exactly one of `equals`, `one_of`, `exists` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The output key read.
    pub key: String,
    /// Holds when the value equals this string exactly.
    #[serde(default)]
    pub equals: Option<String>,
    /// Holds when the value is one of these strings.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// Holds when the key is present (`true`) or absent (`false`).
    #[serde(default)]
    pub exists: Option<bool>,
}

impl Condition {
    /// Whether the condition holds on `output`.
    pub fn holds(&self, output: &std::collections::HashMap<String, String>) -> bool {
        let value = output.get(&self.key);
        if let Some(want) = &self.equals {
            return value == Some(want);
        }
        if let Some(set) = &self.one_of {
            return value.is_some_and(|v| set.contains(v));
        }
        match self.exists {
            Some(want) => value.is_some() == want,
            None => false,
        }
    }

    /// A short rendering for graphs and reasons: `severity == high`.
    pub fn describe(&self) -> String {
        if let Some(v) = &self.equals {
            format!("{} == {v}", self.key)
        } else if let Some(set) = &self.one_of {
            format!("{} in [{}]", self.key, set.join(", "))
        } else if self.exists == Some(false) {
            format!("!{}", self.key)
        } else {
            format!("{} exists", self.key)
        }
    }
}

impl WorkflowSpec {
    /// The step named `name`. Workflows have a handful of steps, so a scan beats a map.
    pub fn step(&self, name: &str) -> Option<&StepSpec> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl StepSpec {
    /// The first edge whose condition holds on `output` and that `usable` allows (a loop's edge
    /// whose bound is used up is not), or `None` when the workflow ends here.
    pub fn next_step(
        &self,
        output: &std::collections::HashMap<String, String>,
        usable: impl Fn(&Edge) -> bool,
    ) -> Option<&Edge> {
        self.next
            .iter()
            .find(|e| e.when.as_ref().is_none_or(|c| c.holds(output)) && usable(e))
    }

    /// The step's kind, from the table it carries (the first, if validation let several by).
    pub fn kind(&self) -> StepKind {
        if self.fan_out.is_some() {
            StepKind::FanOut
        } else if self.consensus.is_some() {
            StepKind::Consensus
        } else if self.supervisor.is_some() {
            StepKind::Supervisor
        } else if self.escalate.is_some() {
            StepKind::Escalate
        } else {
            StepKind::Task
        }
    }

    /// The step's agent type; validation makes sure the kinds that command it declare it.
    pub fn agent(&self) -> AgentType {
        self.agent_type.unwrap_or(AgentType::Supervisor)
    }
}

/// The `[saga]` settings of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SagaConfig {
    /// How long a finished saga is kept, in milliseconds, so that late and duplicate results for it
    /// are still recognised (and counted) instead of looking unknown. 0 deletes at once.
    pub retention_ms: i64,
    /// Anomaly ids kept per saga (and copied into its commands). A storm joins one saga; beyond this
    /// many ids only the count grows, which keeps the state small.
    pub max_anomaly_ids: usize,
    /// Longest failure reason kept in the state and events, in bytes.
    pub max_reason_len: usize,
}

impl Default for SagaConfig {
    fn default() -> Self {
        Self {
            retention_ms: 10 * 60 * 1000,
            max_anomaly_ids: 16,
            max_reason_len: 256,
        }
    }
}

impl SagaConfig {
    /// Every problem with these settings, for the configuration's own report.
    pub fn validate(&self, file: &str) -> Vec<super::validate::Problem> {
        use super::validate::Problem;
        let mut problems = Vec::new();
        if self.retention_ms < 0 {
            let path = "saga.retention_ms".to_string();
            problems.push(Problem::new(file, path, "must be >= 0", self.retention_ms));
        }
        if self.max_anomaly_ids == 0 {
            let path = "saga.max_anomaly_ids".to_string();
            problems.push(Problem::new(file, path, "must be >= 1", 0));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn out(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn conditions_hold_as_documented() {
        let c = |equals: Option<&str>, one_of: Option<&[&str]>, exists: Option<bool>| Condition {
            key: "severity".into(),
            equals: equals.map(str::to_string),
            one_of: one_of.map(|s| s.iter().map(|v| v.to_string()).collect()),
            exists,
        };
        let high = out(&[("severity", "high")]);
        let none = out(&[]);
        assert!(c(Some("high"), None, None).holds(&high));
        assert!(!c(Some("low"), None, None).holds(&high));
        assert!(c(None, Some(&["low", "high"]), None).holds(&high));
        assert!(!c(None, Some(&["low"]), None).holds(&none));
        assert!(c(None, None, Some(true)).holds(&high));
        assert!(c(None, None, Some(false)).holds(&none));
        assert!(!c(None, None, Some(true)).holds(&none));
    }

    #[test]
    fn saga_settings_report_every_problem() {
        let bad = SagaConfig {
            retention_ms: -1,
            max_anomaly_ids: 0,
            ..SagaConfig::default()
        };
        let lines: Vec<String> = bad
            .validate("aura.toml")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "aura.toml: saga.retention_ms: must be >= 0, got -1",
                "aura.toml: saga.max_anomaly_ids: must be >= 1, got 0"
            ]
        );
        assert!(SagaConfig::default().validate("aura.toml").is_empty());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = r#"
            [workflows.w]
            [[workflows.w.steps]]
            name = "a"
            agent_type = "OBSERVER"
            action = "look"
            timeout_ms = 10
            retries = 3
        "#;
        let err = toml::from_str::<WorkflowFile>(text).unwrap_err();
        assert!(err.to_string().contains("retries"), "{err}");
    }
}
