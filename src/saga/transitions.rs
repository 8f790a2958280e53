//! The saga's transitions: issue a step, succeed, fail and retry, compensate, finish.
//!
//! Each transition mutates the state and pushes the records it causes, in publication order. The
//! engine ([`super::machine`]) decides which transition an input triggers and derives the timer and
//! state changes afterwards, so a transition only has to keep the state right.

use std::collections::HashMap;

use crate::model::{
    AgentCommand, AgentType, CompensationCommand, Coordination, Escalation, SagaEvent,
    SagaEventKind,
};

use super::backoff::retry_delay_ms;
use super::config::{Edge, OnFailure, SagaConfig, StepSpec, WorkflowSpec};
use super::effects::SagaOutput;
use super::kinds::{layer_above, StepKind, PLAN_ATTRIBUTE};
use super::state::{
    id_of, CommandRef, Done, Failure, Part, Phase, Run, SagaState, SagaStatus, Stage, TimerKind,
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

    pub fn step_event(
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

    pub fn clip(&self, reason: &str) -> String {
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
            .unwrap_or_else(|| step.agent())
    }

    /// What the step's single command in flight is: agent type, action and timeout. A task's,
    /// a supervisor's plan or final request, or an escalation's hand-over under the saga's
    /// (already raised) layer.
    pub fn task_of<'s>(s: &SagaState, step: &'s StepSpec) -> (AgentType, &'s str, i64) {
        let stage = s.current.as_ref().map_or(Stage::Plan, |r| r.stage);
        match (&step.supervisor, &step.escalate, stage) {
            (Some(sup), _, Stage::Final) => (
                Self::agent_for(s, step),
                sup.final_action.as_str(),
                step.timeout_ms,
            ),
            (_, Some(esc), _) => {
                let p = esc.policy(s.route.layer);
                (p.agent_type, p.action.as_str(), p.timeout_ms)
            }
            _ => (
                Self::agent_for(s, step),
                step.action.as_str(),
                step.timeout_ms,
            ),
        }
    }

    /// The agent type commanded to undo `done`: the compensation's own, else the branch's or
    /// the step's.
    pub fn compensator_for(s: &SagaState, step: &StepSpec, done: &Done) -> AgentType {
        step.compensation
            .as_ref()
            .and_then(|c| c.agent_type)
            .or(done.agent_type)
            .unwrap_or_else(|| Self::agent_for(s, step))
    }

    /// A command for the saga with its routing context.
    #[allow(clippy::too_many_arguments)]
    pub fn command(
        &self,
        s: &SagaState,
        step: &str,
        id: String,
        agent_type: AgentType,
        action: &str,
        coordination: Coordination,
        attempt: i32,
        deadline: i64,
    ) -> AgentCommand {
        AgentCommand {
            command_id: id,
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            anomaly_ids: s.anomaly_ids.clone(),
            workflow: s.workflow.clone(),
            step: step.to_string(),
            agent_type,
            action: action.to_string(),
            layer: s.route.layer,
            coordination,
            pattern_id: s.route.pattern_id.clone(),
            urgency: s.route.urgency,
            complexity: s.route.complexity,
            attempt,
            deadline,
            explanation: super::compact::expand(&s.route.explanation),
            attributes: s.route.attributes.clone(),
            issued_at: self.now,
            partition_key: s.correlation_id.clone(),
            agent_id: None,
            proof: None,
        }
    }

    /// Runs `step` from its first attempt, as its kind says. A step met again on a bounded loop
    /// numbers its attempts on from its last visit's.
    pub fn enter_step(&mut self, s: &mut SagaState, step: &StepSpec) {
        let base = s
            .done
            .iter()
            .filter(|d| d.step == step.name && d.branch.is_none())
            .map(|d| d.attempt)
            .max()
            .unwrap_or(0);
        match step.kind() {
            StepKind::Task | StepKind::Supervisor => {
                s.current = Some(Run {
                    base,
                    ..Run::new(&step.name, base + 1)
                });
                self.issue_step(s, step, base + 1);
            }
            StepKind::FanOut => self.start_fan_out(s, step),
            StepKind::Consensus => self.start_vote(s, step),
            StepKind::Escalate => self.start_escalation(s, step, None),
        }
    }

    /// Sends attempt `attempt` of the step's single command in flight (see [`Self::task_of`])
    /// and arms its timeout.
    pub fn issue_step(&mut self, s: &mut SagaState, step: &StepSpec, attempt: i32) {
        let run = s.current.take();
        let stage = run.as_ref().map_or(Stage::Plan, |r| r.stage);
        let mut run = run
            .filter(|r| r.step == step.name)
            .unwrap_or_else(|| Run::new(&step.name, attempt));
        run.attempt = attempt;
        run.phase = Phase::Waiting;
        s.current = Some(run);
        let part = if stage == Stage::Final {
            Part::Final
        } else {
            Part::Step
        };
        let id = id_of(
            &s.saga_id,
            &CommandRef {
                step: &step.name,
                attempt,
                branch: None,
                part,
            },
        );
        let mut e = self.step_event(s, SagaEventKind::StepStarted, &step.name, attempt);
        e.command_id = Some(id.clone());
        self.out.push(SagaOutput::Event(e));
        let (agent_type, action, timeout) = Self::task_of(s, step);
        let deadline = self.now.saturating_add(timeout);
        let coordination = match step.kind() {
            StepKind::Supervisor => Coordination::Hierarchical,
            _ => s.route.coordination,
        };
        let mut c = self.command(
            s,
            &step.name,
            id,
            agent_type,
            action,
            coordination,
            attempt,
            deadline,
        );
        if let Some(sup) = step.supervisor.as_ref().filter(|_| stage == Stage::Plan) {
            c.attributes
                .insert(PLAN_ATTRIBUTE.into(), sup.max_subtasks.to_string());
        }
        self.out.push(SagaOutput::Command(c));
        s.set_timer(TimerKind::StepTimeout, deadline);
    }

    /// The current attempt succeeded: a supervisor's plan goes out as sub-tasks; anything else
    /// is recorded and the saga moves along the first matching edge.
    pub fn step_succeeded(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        command: &str,
        output: &HashMap<String, String>,
    ) {
        let run = s.current.as_ref();
        let attempt = run.map_or(1, |r| r.attempt);
        if step.supervisor.is_some() && run.is_some_and(|r| r.stage == Stage::Plan) {
            return self.plan_received(s, step, command, output);
        }
        let approval = Self::approval_output(s, step, output);
        let mut e = self.step_event(s, SagaEventKind::StepSucceeded, &step.name, attempt);
        e.command_id = Some(command.to_string());
        e.reason = approval
            .as_ref()
            .map(|a| format!("approval: {}", a["approval"]));
        self.out.push(SagaOutput::Event(e));
        s.done.push(Done {
            decision: approval.as_ref().map(|a| a["approval"].clone()),
            ..Done::step(&step.name, attempt)
        });
        self.advance(s, step, approval.as_ref().unwrap_or(output));
    }

    /// Leaves a finished step by the first matching edge whose loop bound (if any) is not used
    /// up, or completes the saga when none matches.
    pub fn advance(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        output: &HashMap<String, String>,
    ) {
        s.current = None;
        let key = |e: &Edge| format!("{}>{}", step.name, e.to);
        let edge = step.next_step(output, |e| {
            e.max_times
                .is_none_or(|m| s.loops.get(&key(e)).copied().unwrap_or(0) < m)
        });
        if let Some(e) = edge.filter(|e| e.max_times.is_some()) {
            *s.loops.entry(key(e)).or_insert(0) += 1;
        }
        match edge.and_then(|edge| self.step(&edge.to)) {
            Some(next) => self.enter_step(s, next),
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
    pub fn schedule_retry(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        attempt: i32,
        command: String,
        reason: String,
        timer: TimerKind,
    ) {
        // Backoff counts this visit's attempts only (a bounded loop's later visits start over).
        let base = s.current.as_ref().map_or(0, |r| r.base);
        let n = attempt - base;
        let due = self.now + retry_delay_ms(&step.retry, &s.saga_id, &step.name, n);
        let mut e = self.step_event(s, SagaEventKind::RetryScheduled, &step.name, attempt + 1);
        e.command_id = Some(command);
        e.reason = Some(reason);
        e.retry_at = Some(due);
        self.out.push(SagaOutput::Event(e));
        s.set_timer(timer, due);
    }

    pub fn step_failed(&mut self, s: &mut SagaState, step: &StepSpec, cause: Cause) {
        if self.approval_failed(s, step, &cause) {
            return;
        }
        let Some(run) = s.current.as_mut() else {
            return;
        };
        let (attempt, base) = (run.attempt, run.base);
        let (_, _, timeout) = Self::task_of(s, step);
        let (kind, phase, reason) = match cause {
            Cause::Failed(r) => (SagaEventKind::StepFailed, Phase::Failed, self.clip(&r)),
            Cause::TimedOut => (
                SagaEventKind::StepTimedOut,
                Phase::TimedOut,
                format!("no result within {timeout} ms"),
            ),
        };
        let final_stage = s.current.as_ref().is_some_and(|r| r.stage == Stage::Final);
        if let Some(run) = s.current.as_mut() {
            run.phase = phase;
        }
        let part = if final_stage { Part::Final } else { Part::Step };
        let id = id_of(
            &s.saga_id,
            &CommandRef {
                step: &step.name,
                attempt,
                branch: None,
                part,
            },
        );
        let mut e = self.step_event(s, kind, &step.name, attempt);
        e.command_id = Some(id.clone());
        e.reason = Some(reason.clone());
        self.out.push(SagaOutput::Event(e));
        if attempt - base < step.retry.max_attempts {
            self.schedule_retry(s, step, attempt, id, reason, TimerKind::Retry);
            return;
        }
        self.give_up(s, step, attempt, phase == Phase::TimedOut, reason);
    }

    /// The step failed for good: the saga ends FAILED or compensates, as the workflow says.
    pub fn give_up(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        attempt: i32,
        timed_out: bool,
        reason: String,
    ) {
        s.current = None;
        s.failure = Some(Failure {
            step: step.name.clone(),
            attempt,
            timed_out,
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

    /// Compensates the newest completed step (or branch) not yet undone, or ends COMPENSATED.
    /// A task's entry is undone by its compensation; a fan-out's or supervisor's branches each
    /// by the step's compensation; other entries have nothing to undo.
    pub fn next_compensation(&mut self, s: &mut SagaState) {
        while s.cursor > 0 {
            let d = &s.done[s.cursor - 1];
            let undoable = self.step(&d.step).filter(|st| {
                st.compensation.is_some() && (d.branch.is_some() || st.kind() == StepKind::Task)
            });
            match undoable {
                Some(step) => return self.issue_compensation(s, step, 1),
                // Nothing to undo for this entry (or its step left the workflow): move on.
                None => s.cursor -= 1,
            }
        }
        let why = match &s.failure {
            Some(f) => format!("compensated after step {} failed: {}", f.step, f.reason),
            None => "compensated".to_string(),
        };
        self.finish(s, SagaStatus::Compensated, SagaEventKind::Compensated, why);
    }

    /// Sends attempt `attempt` of the compensation of `done[cursor - 1]` and arms its timeout.
    pub fn issue_compensation(&mut self, s: &mut SagaState, step: &StepSpec, attempt: i32) {
        let Some(comp) = &step.compensation else {
            return;
        };
        // A state restored from a changelog is trusted, but never indexed out of bounds.
        let Some(done) = s.cursor.checked_sub(1).and_then(|i| s.done.get(i)).cloned() else {
            return;
        };
        let reason = s.failure.as_ref().map_or(String::new(), |f| {
            format!("step {} failed: {}", f.step, f.reason)
        });
        let part = |part, attempt| CommandRef {
            step: &step.name,
            attempt,
            branch: done.branch,
            part,
        };
        self.out.push(SagaOutput::Compensation(CompensationCommand {
            command_id: id_of(&s.saga_id, &part(Part::Undo, attempt)),
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            compensates_command_id: id_of(&s.saga_id, &part(Part::Step, done.attempt)),
            step: step.name.clone(),
            agent_type: Self::compensator_for(s, step, &done),
            action: comp.action.clone(),
            attempt,
            reason,
            issued_at: self.now,
            partition_key: s.correlation_id.clone(),
            proof: None,
        }));
        s.current = Some(Run::new(&step.name, attempt));
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
        let branch = s.cursor.checked_sub(1).and_then(|i| s.done.get(i)?.branch);
        let id = id_of(
            &s.saga_id,
            &CommandRef {
                step: &step.name,
                attempt,
                branch,
                part: Part::Undo,
            },
        );
        let max = comp.max_attempts.unwrap_or(step.retry.max_attempts);
        if attempt < max {
            self.schedule_retry(s, step, attempt, id, reason, TimerKind::CompensationRetry);
            return;
        }
        s.current = None;
        let left: Vec<String> = s.done[..s.cursor]
            .iter()
            .rev()
            .filter(|d| {
                self.step(&d.step).is_some_and(|st| {
                    st.compensation.is_some() && (d.branch.is_some() || st.kind() == StepKind::Task)
                })
            })
            .map(|d| match d.branch {
                Some(b) => format!("{}/b{b}", d.step),
                None => d.step.clone(),
            })
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
        let to_layer = layer_above(s.route.layer);
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
