//! Escalation steps: the saga moves one layer up (operational → tactical → strategic; a strategic
//! saga stays strategic), says so on `orchestration.escalations`, and hands the incident to the
//! new layer's agent under that layer's policy. Every later command carries the new layer.
//!
//! Without `approval`, the hand-over is a task (retried, and its output picks the edge). With it,
//! the saga waits for an approving result: `approved = "true"` in a SUCCEEDED result approves;
//! anything else rejects; no answer by the policy's `timeout_ms` is the declared `on_timeout`.
//! The step's output is `approval` = `approved` | `rejected` (and `timed_out` = `true` after a
//! timeout), which the edges read. An approval is never retried: a person said no, or nobody
//! answered, and the workflow says what then.

use std::collections::HashMap;

use crate::model::{Escalation, SagaEventKind};

use super::config::StepSpec;
use super::effects::SagaOutput;
use super::kinds::layer_above;
use super::state::{Done, Run, SagaState};
use super::transitions::{Cause, Tx};

/// How a done approval's verdict ends when a timeout gave it.
pub const TIMED_OUT: &str = " (timed out)";

impl Tx<'_> {
    /// Raises the saga's layer, reports it, and issues the new layer's command.
    pub fn start_escalation(&mut self, s: &mut SagaState, step: &StepSpec, why: Option<String>) {
        let from_layer = s.route.layer;
        let to_layer = layer_above(from_layer);
        s.route.layer = to_layer;
        let reason = why.unwrap_or_else(|| format!("step {} escalates", step.name));
        self.out.push(SagaOutput::Escalation(Escalation {
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            step: Some(step.name.clone()),
            from_layer,
            to_layer,
            reason,
            at: self.now,
        }));
        s.current = Some(Run::new(&step.name, 1));
        self.issue_step(s, step, 1);
    }

    /// The approval's output for a SUCCEEDED result, or `None` when the step waits for none.
    pub fn approval_output(
        s: &SagaState,
        step: &StepSpec,
        output: &HashMap<String, String>,
    ) -> Option<HashMap<String, String>> {
        let policy = step.escalate.as_ref()?.policy(s.route.layer);
        policy.approval.then(|| {
            let approved = output.get("approved").is_some_and(|v| v == "true");
            let verdict = if approved { "approved" } else { "rejected" };
            HashMap::from([("approval".to_string(), verdict.to_string())])
        })
    }

    /// A FAILED result or a timeout of an approval decides it (rejected, or the declared
    /// `on_timeout`) instead of retrying; `false` when the step is not an approval.
    pub fn approval_failed(&mut self, s: &mut SagaState, step: &StepSpec, cause: &Cause) -> bool {
        let Some(policy) = step.escalate.as_ref().map(|e| e.policy(s.route.layer)) else {
            return false;
        };
        if !policy.approval {
            return false;
        }
        let attempt = s.current.as_ref().map_or(1, |r| r.attempt);
        let (verdict, timed_out, reason) = match cause {
            Cause::Failed(e) => (
                "rejected",
                false,
                format!("approval refused: {}", self.clip(e)),
            ),
            Cause::TimedOut => {
                let v = policy.on_timeout.as_deref().unwrap_or("rejected");
                (
                    v,
                    true,
                    format!("no approval within {} ms: {v}", policy.timeout_ms),
                )
            }
        };
        let kind = if timed_out {
            SagaEventKind::StepTimedOut
        } else {
            SagaEventKind::StepSucceeded
        };
        let mut e = self.step_event(s, kind, &step.name, attempt);
        e.reason = Some(reason);
        self.out.push(SagaOutput::Event(e));
        let recorded = format!("{verdict}{}", if timed_out { TIMED_OUT } else { "" });
        s.done.push(Done {
            decision: Some(recorded),
            ..Done::step(&step.name, attempt)
        });
        let mut output = HashMap::from([("approval".to_string(), verdict.to_string())]);
        if timed_out {
            output.insert("timed_out".into(), "true".into());
        }
        self.advance(s, step, &output);
        true
    }
}
