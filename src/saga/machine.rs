//! The saga engine: four inputs (`start`, `join`, `on_result`, `on_timer`), each applied to one
//! saga's state and returning its [`Effects`]. Deterministic: time comes in as `now_ms`, command ids
//! and retry jitter derive from the saga, so re-processing an input after an aborted transaction
//! produces the same records.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    AgentResult, AgentType, AgentVote, Coordination, Layer, ResultStatus, SagaEventKind,
};

use super::classify::{classify, Target};
use super::config::{SagaConfig, WorkflowSpec};
use super::effects::{Effects, Ignored, SagaOutput, StateChange, TimerUpdate};
use super::kinds::StepKind;
use super::state::{PendingTimer, RouteContext, SagaState, SagaStatus, Stage, Timer, TimerKind};
use super::transitions::{Cause, Tx};
use super::vote::classify_vote;
use super::workflows::Workflows;

/// Everything a new saga needs: the incident, the workflow and the route that chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaStart {
    /// From the incident: the correlation key and a time bucket (or a configured rule).
    pub saga_id: String,
    pub correlation_id: String,
    pub workflow: String,
    /// The anomaly (or anomalies) that started it.
    pub anomaly_ids: Vec<String>,
    pub pattern_id: Option<String>,
    pub layer: Layer,
    pub coordination: Coordination,
    pub urgency: f64,
    pub complexity: f64,
    /// Why this route: copied into every command.
    pub explanation: String,
    /// Business attributes copied into every command.
    pub attributes: HashMap<String, String>,
    /// Agent types routing reassigned, by step name; steps not listed use the workflow's.
    pub agent_overrides: BTreeMap<String, AgentType>,
}

/// Why a saga could not start. Poison: the triggering record goes to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("saga {saga_id}: unknown workflow {workflow:?}")]
    UnknownWorkflow { saga_id: String, workflow: String },
    /// A non-finite number would be stored as JSON `null` and never read back.
    #[error("saga {saga_id}: {field} must be a finite number, got {value}")]
    NotFinite {
        saga_id: String,
        field: &'static str,
        value: f64,
    },
}

/// Runs sagas against a shared set of workflows. Cheap to clone; holds no saga state itself.
#[derive(Debug, Clone)]
pub struct SagaEngine {
    pub workflows: Arc<Workflows>,
    pub config: SagaConfig,
}

impl SagaEngine {
    pub fn new(workflows: Arc<Workflows>, config: SagaConfig) -> Self {
        Self { workflows, config }
    }

    /// Starts a saga: STARTED, STEP_STARTED and the first command, with the first step's timeout.
    pub fn start(&self, req: SagaStart, now_ms: i64) -> Result<(SagaState, Effects), SagaError> {
        // Found by the saga_machine fuzz target: a NaN urgency made the stored state unreadable.
        for (field, value) in [("urgency", req.urgency), ("complexity", req.complexity)] {
            if !value.is_finite() {
                return Err(SagaError::NotFinite {
                    saga_id: req.saga_id,
                    field,
                    value,
                });
            }
        }
        let Some(wf) = self.workflows.get(&req.workflow) else {
            return Err(SagaError::UnknownWorkflow {
                saga_id: req.saga_id,
                workflow: req.workflow,
            });
        };
        let mut anomaly_ids = req.anomaly_ids;
        let mut seen = std::collections::HashSet::new();
        anomaly_ids.retain(|a| seen.insert(a.clone()));
        let cap = self.config.max_anomaly_ids;
        let more = anomaly_ids.len().saturating_sub(cap) as u32;
        anomaly_ids.truncate(cap);
        let mut s = SagaState {
            saga_id: req.saga_id,
            correlation_id: req.correlation_id,
            workflow: req.workflow,
            status: SagaStatus::Running,
            anomaly_ids,
            more_anomalies: more,
            route: RouteContext {
                pattern_id: req.pattern_id,
                layer: req.layer,
                coordination: req.coordination,
                urgency: req.urgency,
                complexity: req.complexity,
                // Kept phrase-coded: about half the bytes (`compact`).
                explanation: super::compact::compact(&req.explanation),
                attributes: req.attributes,
            },
            agent_overrides: req.agent_overrides,
            current: None,
            done: Vec::new(),
            cursor: 0,
            failure: None,
            timer: None,
            timer_seq: 0,
            loops: BTreeMap::new(),
            trace: None,
            started_at: now_ms,
            updated_at: now_ms,
            finished_at: None,
        };
        let mut tx = self.tx(wf, now_ms);
        let mut e = tx.event(&s, SagaEventKind::Started);
        e.reason = Some(super::compact::expand(&s.route.explanation)).filter(|r| !r.is_empty());
        tx.out.push(SagaOutput::Event(e));
        // Validation guarantees at least one step.
        if let Some(first) = wf.steps.first() {
            tx.enter_step(&mut s, first);
        }
        let out = tx.out;
        let fx = effects(&mut s, None, out, now_ms);
        Ok((s, fx))
    }

    /// Records a later anomaly of the same incident. Emits nothing: a storm joins one saga.
    pub fn join(&self, s: &mut SagaState, anomaly_id: &str, now_ms: i64) -> Effects {
        if s.anomaly_ids.iter().any(|a| a == anomaly_id) {
            return Effects::ignored(Ignored::Duplicate);
        }
        if s.status.is_terminal() {
            return Effects::ignored(Ignored::Late);
        }
        if s.anomaly_ids.len() < self.config.max_anomaly_ids {
            s.anomaly_ids.push(anomaly_id.to_string());
        } else {
            s.more_anomalies = s.more_anomalies.saturating_add(1);
        }
        s.updated_at = now_ms;
        Effects::put()
    }

    /// Applies an agent's result for one of this saga's commands.
    pub fn on_result(&self, s: &mut SagaState, r: &AgentResult, now_ms: i64) -> Effects {
        let Some(wf) = self.workflows.get(&s.workflow).cloned() else {
            return Effects::ignored(Ignored::Unknown);
        };
        let target = match classify(s, &wf, r) {
            Ok(t) => t,
            Err(why) => return Effects::ignored(why),
        };
        let before = s.timer;
        let mut tx = self.tx(&wf, now_ms);
        let Some(step) = s.current.as_ref().and_then(|run| wf.step(&run.step)) else {
            return Effects::ignored(Ignored::Unknown);
        };
        let ok = r.status == ResultStatus::Succeeded;
        match target {
            Target::Branch(i) => tx.branch_result(s, step, i, ok, error_of(r)),
            Target::Step if ok => tx.step_succeeded(s, step, &r.command_id, &r.output),
            Target::Step => tx.step_failed(s, step, Cause::Failed(error_of(r))),
            Target::Compensation if ok => tx.compensation_succeeded(s),
            Target::Compensation => tx.compensation_failed(s, step, Cause::Failed(error_of(r))),
        }
        let out = tx.out;
        effects(s, before, out, now_ms)
    }

    /// Counts an agent's vote on one of this saga's ballots, deciding the step when the outcome
    /// is sure. A vote not asked for, repeated, late or for no option is ignored, with why.
    pub fn on_vote(&self, s: &mut SagaState, v: &AgentVote, now_ms: i64) -> Effects {
        let Some(wf) = self.workflows.get(&s.workflow).cloned() else {
            return Effects::ignored(Ignored::Unknown);
        };
        let i = match classify_vote(s, &wf, v) {
            Ok(i) => i,
            Err(why) => return Effects::ignored(why),
        };
        let Some(step) = wf.step(&v.step) else {
            return Effects::ignored(Ignored::Unknown);
        };
        let before = s.timer;
        let mut tx = self.tx(&wf, now_ms);
        tx.count_vote(s, step, i, v);
        let out = tx.out;
        effects(s, before, out, now_ms)
    }

    /// Fires a due timer: a timeout fails the attempt, a retry re-issues it, an expiry deletes.
    pub fn on_timer(&self, s: &mut SagaState, t: &Timer, now_ms: i64) -> Effects {
        let current = s.timer.filter(|p| p.seq == t.seq && p.kind == t.kind);
        let Some(pending) = current.filter(|p| p.due_ms <= now_ms) else {
            return Effects::ignored(Ignored::StaleTimer);
        };
        if pending.kind == TimerKind::Expire {
            s.timer = None;
            return Effects {
                outputs: Vec::new(),
                timer: TimerUpdate::Clear,
                state: StateChange::Delete,
                ignored: None,
            };
        }
        let before = s.timer;
        s.timer = None;
        let wf = self.workflows.get(&s.workflow).cloned();
        let step = wf
            .as_ref()
            .zip(s.current.as_ref())
            .and_then(|(wf, run)| wf.step(&run.step));
        let (Some(wf), Some(step)) = (wf.as_ref(), step) else {
            return self.abandon(s, before, now_ms);
        };
        let mut tx = self.tx(wf, now_ms);
        let attempt = s.current.as_ref().map_or(1, |r| r.attempt);
        let stage = s.current.as_ref().map_or(Stage::Plan, |r| r.stage);
        match pending.kind {
            TimerKind::StepTimeout => match (step.kind(), stage) {
                (StepKind::FanOut, _) | (StepKind::Supervisor, Stage::Work) => {
                    tx.join_deadline(s, step)
                }
                (StepKind::Consensus, _) => tx.vote_deadline(s, step),
                _ => tx.step_failed(s, step, Cause::TimedOut),
            },
            TimerKind::Retry => tx.issue_step(s, step, attempt + 1),
            TimerKind::CompensationTimeout => tx.compensation_failed(s, step, Cause::TimedOut),
            TimerKind::CompensationRetry => tx.issue_compensation(s, step, attempt + 1),
            TimerKind::Expire => {}
        }
        let out = tx.out;
        effects(s, before, out, now_ms)
    }

    /// A restored saga whose workflow or step is no longer defined: it cannot go on, so it ends
    /// FAILED and is escalated rather than left hanging.
    fn abandon(&self, s: &mut SagaState, before: Option<PendingTimer>, now: i64) -> Effects {
        let empty = WorkflowSpec {
            name: s.workflow.clone(),
            description: String::new(),
            on_failure: Default::default(),
            steps: Vec::new(),
        };
        let mut tx = self.tx(&empty, now);
        let step = s.current.as_ref().map(|r| r.step.clone());
        let why = format!(
            "workflow {} or its step {} is no longer defined",
            s.workflow,
            step.as_deref().unwrap_or("-")
        );
        tx.escalate(s, step, why.clone());
        tx.finish(s, SagaStatus::Failed, SagaEventKind::Failed, why);
        let out = tx.out;
        effects(s, before, out, now)
    }

    fn tx<'a>(&'a self, wf: &'a WorkflowSpec, now: i64) -> Tx<'a> {
        Tx {
            cfg: &self.config,
            wf,
            now,
            out: Vec::new(),
        }
    }
}

fn error_of(r: &AgentResult) -> String {
    r.error
        .clone()
        .unwrap_or_else(|| format!("agent {} reported FAILED", r.agent_id))
}

/// Derives the timer and state changes from what the transition did to the state.
fn effects(
    s: &mut SagaState,
    before: Option<PendingTimer>,
    outputs: Vec<SagaOutput>,
    now: i64,
) -> Effects {
    s.updated_at = now;
    let timer = match (before, s.timer) {
        (b, a) if b == a => TimerUpdate::Unchanged,
        (_, Some(_)) => TimerUpdate::Set(s.timer().expect("timer just checked")),
        (_, None) => TimerUpdate::Clear,
    };
    let state = if s.status.is_terminal() && s.timer.is_none() {
        StateChange::Delete
    } else {
        StateChange::Put
    };
    Effects {
        outputs,
        timer,
        state,
        ignored: None,
    }
}
