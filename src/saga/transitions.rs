//! The saga's transitions: issue a step, succeed, fail and retry, compensate, finish.
//!
//! Each transition mutates the state and pushes the records it causes, in publication order. The
//! engine ([`super::machine`]) decides which transition an input triggers and derives the timer and
//! state changes afterwards, so a transition only has to keep the state right.

use std::collections::HashMap;

use crate::model::{
    AgentCommand, AgentType, CompensationCommand, Escalation, Layer, SagaEvent, SagaEventKind,
};

use super::backoff::retry_delay_ms;
use super::config::{OnFailure, SagaConfig, StepSpec, WorkflowSpec};
use super::effects::SagaOutput;
use super::state::{
    command_id, compensation_id, Done, Failure, Phase, Run, SagaState, SagaStatus, TimerKind,
};

/// Why an attempt failed.
pub(crate) enum Cause {
    Failed(String),
    TimedOut,
}

/// One transition in progress: the workflow, the clock and the records produced so far.
pub(crate) struct Tx<'a> {
    pub cfg: &'a SagaConfig,
    pub wf: &'a WorkflowSpec,
    pub now: i64,
    pub out: Vec<SagaOutput>,
}

impl<'a> Tx<'a> {
    pub fn event(&self, s: &SagaState, kind: SagaEventKind) -> SagaEvent {
        SagaEvent {
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            workflow: s.workflow.clone(),
            kind,
            step: None,
            command_id: None,
            attempt: 0,
            reason: None,
            retry_at: None,
            at: self.now,
        }
    }

    fn step_event(
        &self,
        s: &SagaState,
        kind: SagaEventKind,
        step: &str,
        attempt: i32,
    ) -> SagaEvent {
        let mut e = self.event(s, kind);
        e.step = Some(step.to_string());
        e.attempt = attempt;
        e
    }

    fn clip(&self, reason: &str) -> String {
        let mut end = reason.len().min(self.cfg.max_reason_len);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason[..end].to_string()
    }

    pub fn step(&self, name: &str) -> Option<&'a StepSpec> {
        self.wf.step(name)
    }

    /// The agent type commanded for `step`: routing's reassignment, or the workflow's.
    pub fn agent_for(s: &SagaState, step: &StepSpec) -> AgentType {
        s.agent_overrides
            .get(&step.name)
            .copied()
            .unwrap_or(step.agent_type)
    }

    /// The agent type commanded for `step`'s compensation.
    pub fn compensator_for(s: &SagaState, step: &StepSpec) -> AgentType {
        step.compensation
            .as_ref()
            .and_then(|c| c.agent_type)
            .unwrap_or_else(|| Self::agent_for(s, step))
    }

    /// Sends attempt `attempt` of `step` and arms its timeout.
    pub fn issue_step(&mut self, s: &mut SagaState, step: &StepSpec, attempt: i32) {
        let id = command_id(&s.saga_id, &step.name, attempt);
        let mut e = self.step_event(s, SagaEventKind::StepStarted, &step.name, attempt);
        e.command_id = Some(id.clone());
        self.out.push(SagaOutput::Event(e));
        let deadline = self.now.saturating_add(step.timeout_ms);
        self.out.push(SagaOutput::Command(AgentCommand {
            command_id: id,
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            anomaly_ids: s.anomaly_ids.clone(),
            workflow: s.workflow.clone(),
            step: step.name.clone(),
            agent_type: Self::agent_for(s, step),
            action: step.action.clone(),
            layer: s.route.layer,
            coordination: s.route.coordination,
            pattern_id: s.route.pattern_id.clone(),
            urgency: s.route.urgency,
            complexity: s.route.complexity,
            attempt,
            deadline,
            explanation: s.route.explanation.clone(),
            attributes: s.route.attributes.clone(),
            issued_at: self.now,
            partition_key: s.correlation_id.clone(),
            agent_id: None,
            proof: None,
        }));
        s.current = Some(Run {
            step: step.name.clone(),
            attempt,
            phase: Phase::Waiting,
        });
        s.set_timer(TimerKind::StepTimeout, deadline);
    }

    /// The current attempt succeeded: record it and move along the first matching edge.
    pub fn step_succeeded(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        command: &str,
        output: &HashMap<String, String>,
    ) {
        let attempt = s.current.as_ref().map_or(1, |r| r.attempt);
        let mut e = self.step_event(s, SagaEventKind::StepSucceeded, &step.name, attempt);
        e.command_id = Some(command.to_string());
        self.out.push(SagaOutput::Event(e));
        s.done.push(Done {
            step: step.name.clone(),
            attempt,
        });
        s.current = None;
        match step.next_step(output).and_then(|edge| self.step(&edge.to)) {
            Some(next) => self.issue_step(s, next, 1),
            None => {
                let why = if step.next.is_empty() {
                    format!("step {} is the last", step.name)
                } else {
                    format!("no edge of step {} matched its output", step.name)
                };
                self.finish(s, SagaStatus::Completed, SagaEventKind::Completed, why);
            }
        }
    }

    /// The current attempt failed or timed out: retry after the backoff, or give up.
    /// RETRY_SCHEDULED for the attempt after `attempt` of `command` (a step's or its
    /// compensation's), and the `timer` that issues it once the step's backoff is over.
    fn schedule_retry(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        attempt: i32,
        command: String,
        reason: String,
        timer: TimerKind,
    ) {
        let due = self.now + retry_delay_ms(&step.retry, &s.saga_id, &step.name, attempt);
        let mut e = self.step_event(s, SagaEventKind::RetryScheduled, &step.name, attempt + 1);
        e.command_id = Some(command);
        e.reason = Some(reason);
        e.retry_at = Some(due);
        self.out.push(SagaOutput::Event(e));
        s.set_timer(timer, due);
    }

    pub fn step_failed(&mut self, s: &mut SagaState, step: &StepSpec, cause: Cause) {
        let Some(run) = s.current.as_mut() else {
            return;
        };
        let attempt = run.attempt;
        let (kind, phase, reason) = match cause {
            Cause::Failed(r) => (SagaEventKind::StepFailed, Phase::Failed, self.clip(&r)),
            Cause::TimedOut => (
                SagaEventKind::StepTimedOut,
                Phase::TimedOut,
                format!("no result within {} ms", step.timeout_ms),
            ),
        };
        run.phase = phase;
        let id = command_id(&s.saga_id, &step.name, attempt);
        let mut e = self.step_event(s, kind, &step.name, attempt);
        e.command_id = Some(id.clone());
        e.reason = Some(reason.clone());
        self.out.push(SagaOutput::Event(e));
        if attempt < step.retry.max_attempts {
            self.schedule_retry(s, step, attempt, id, reason, TimerKind::Retry);
            return;
        }
        s.current = None;
        s.failure = Some(Failure {
            step: step.name.clone(),
            attempt,
            timed_out: phase == Phase::TimedOut,
            reason: reason.clone(),
        });
        let why = format!(
            "step {} failed after {attempt} attempt(s): {reason}",
            step.name
        );
        match self.wf.on_failure {
            OnFailure::Fail => self.finish(s, SagaStatus::Failed, SagaEventKind::Failed, why),
            OnFailure::Compensate => {
                s.status = SagaStatus::Compensating;
                let mut e = self.event(s, SagaEventKind::Compensating);
                e.reason = Some(why);
                self.out.push(SagaOutput::Event(e));
                s.cursor = s.done.len();
                self.next_compensation(s);
            }
        }
    }

    /// Compensates the newest completed step not yet undone, or ends COMPENSATED.
    pub fn next_compensation(&mut self, s: &mut SagaState) {
        while s.cursor > 0 {
            let name = &s.done[s.cursor - 1].step;
            match self.step(name).filter(|st| st.compensation.is_some()) {
                Some(step) => return self.issue_compensation(s, step, 1),
                // Nothing to undo for this step (or it left the workflow): move on.
                None => s.cursor -= 1,
            }
        }
        let why = match &s.failure {
            Some(f) => format!("compensated after step {} failed: {}", f.step, f.reason),
            None => "compensated".to_string(),
        };
        self.finish(s, SagaStatus::Compensated, SagaEventKind::Compensated, why);
    }

    /// Sends attempt `attempt` of `step`'s compensation and arms its timeout.
    pub fn issue_compensation(&mut self, s: &mut SagaState, step: &StepSpec, attempt: i32) {
        let Some(comp) = &step.compensation else {
            return;
        };
        // A state restored from a changelog is trusted, but never indexed out of bounds.
        let Some(done) = s.cursor.checked_sub(1).and_then(|i| s.done.get(i)) else {
            return;
        };
        let reason = s.failure.as_ref().map_or(String::new(), |f| {
            format!("step {} failed: {}", f.step, f.reason)
        });
        self.out.push(SagaOutput::Compensation(CompensationCommand {
            command_id: compensation_id(&s.saga_id, &step.name, attempt),
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            compensates_command_id: command_id(&s.saga_id, &done.step, done.attempt),
            step: step.name.clone(),
            agent_type: Self::compensator_for(s, step),
            action: comp.action.clone(),
            attempt,
            reason,
            issued_at: self.now,
            partition_key: s.correlation_id.clone(),
            proof: None,
        }));
        s.current = Some(Run {
            step: step.name.clone(),
            attempt,
            phase: Phase::Waiting,
        });
        let timeout = comp.timeout_ms.unwrap_or(step.timeout_ms);
        s.set_timer(
            TimerKind::CompensationTimeout,
            self.now.saturating_add(timeout),
        );
    }

    /// The current compensation succeeded: on to the next older step.
    pub fn compensation_succeeded(&mut self, s: &mut SagaState) {
        s.current = None;
        s.cursor = s.cursor.saturating_sub(1);
        self.next_compensation(s);
    }

    /// The current compensation failed or timed out: retry it, or report and escalate.
    pub fn compensation_failed(&mut self, s: &mut SagaState, step: &StepSpec, cause: Cause) {
        let Some(comp) = &step.compensation else {
            return;
        };
        let Some(run) = s.current.as_mut() else {
            return;
        };
        let attempt = run.attempt;
        let timeout = comp.timeout_ms.unwrap_or(step.timeout_ms);
        let (phase, reason) = match cause {
            Cause::Failed(r) => (
                Phase::Failed,
                format!("compensation failed: {}", self.clip(&r)),
            ),
            Cause::TimedOut => (
                Phase::TimedOut,
                format!("compensation: no result within {timeout} ms"),
            ),
        };
        run.phase = phase;
        let id = compensation_id(&s.saga_id, &step.name, attempt);
        let max = comp.max_attempts.unwrap_or(step.retry.max_attempts);
        if attempt < max {
            self.schedule_retry(s, step, attempt, id, reason, TimerKind::CompensationRetry);
            return;
        }
        s.current = None;
        let left: Vec<&str> = s.done[..s.cursor]
            .iter()
            .rev()
            .map(|d| d.step.as_str())
            .filter(|n| self.step(n).is_some_and(|st| st.compensation.is_some()))
            .collect();
        let why = format!(
            "compensation {} of step {} failed after {attempt} attempt(s): {reason}; not compensated: {}",
            comp.action,
            step.name,
            left.join(", ")
        );
        let mut e = self.step_event(s, SagaEventKind::CompensationFailed, &step.name, attempt);
        e.command_id = Some(id);
        e.reason = Some(why.clone());
        self.out.push(SagaOutput::Event(e));
        self.escalate(s, Some(step.name.clone()), why.clone());
        self.finish(s, SagaStatus::Failed, SagaEventKind::Failed, why);
    }

    /// Hands the saga to the next layer up (a strategic saga stays strategic).
    pub fn escalate(&mut self, s: &SagaState, step: Option<String>, reason: String) {
        let to_layer = match s.route.layer {
            Layer::Operational => Layer::Tactical,
            Layer::Tactical | Layer::Strategic => Layer::Strategic,
        };
        self.out.push(SagaOutput::Escalation(Escalation {
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            step,
            from_layer: s.route.layer,
            to_layer,
            reason,
            at: self.now,
        }));
    }

    /// Ends the saga: the terminal event, then the retention timer (or none, and deletion, when
    /// retention is 0). The routing context is dropped: no more commands will carry it.
    pub fn finish(
        &mut self,
        s: &mut SagaState,
        status: SagaStatus,
        kind: SagaEventKind,
        why: String,
    ) {
        s.status = status;
        s.current = None;
        s.finished_at = Some(self.now);
        let mut e = self.event(s, kind);
        e.reason = Some(why);
        self.out.push(SagaOutput::Event(e));
        s.route.explanation = String::new();
        s.route.attributes = HashMap::new();
        if self.cfg.retention_ms > 0 {
            s.set_timer(
                TimerKind::Expire,
                self.now.saturating_add(self.cfg.retention_ms),
            );
        } else {
            s.timer = None;
        }
    }
}
