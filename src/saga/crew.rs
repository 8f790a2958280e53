//! Crews: a fan-out's branches and a supervisor's sub-tasks, issued at once and closed by a join.
//!
//! Every branch is a command of its own (`{saga}/{step}/b{i}/{attempt}`); a FAILED branch is
//! re-issued at once while the step's `retry.max_attempts` allow (the join deadline, the step's
//! `timeout_ms`, is the only clock, so there is no backoff). A branch that succeeds is listed in
//! `done` at once, so a later failure undoes it like a step, newest first. When the join is met,
//! the branches still out are cancelled; when it can no longer be met (or the deadline passes
//! first), they are cancelled too and the step fails for good, compensating what succeeded.

use std::collections::HashMap;

use crate::model::{AgentType, CompensationCommand, Coordination, SagaEventKind};

use super::config::StepSpec;
use super::effects::SagaOutput;
use super::kinds::{Join, StepKind};
use super::state::{
    id_of, Branch, BranchState, CommandRef, Done, Part, Run, SagaState, Stage, TimerKind,
};
use super::transitions::Tx;

/// Why a supervisor's plan cannot be run.
fn parse_plan(plan: &str, max: usize) -> Result<Vec<(AgentType, String)>, String> {
    let mut tasks = Vec::new();
    for entry in plan.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (kind, action) = entry
            .split_once(':')
            .ok_or_else(|| format!("plan entry {entry:?} is not AGENT_TYPE:action"))?;
        let agent_type = match kind.trim() {
            "OBSERVER" => AgentType::Observer,
            "ANALYST" => AgentType::Analyst,
            "SUPERVISOR" => AgentType::Supervisor,
            other => {
                return Err(format!(
                    "plan entry {entry:?}: unknown agent type {other:?}"
                ))
            }
        };
        let action = action.trim();
        if action.is_empty() || action.contains(['/', ';']) {
            return Err(format!("plan entry {entry:?}: bad action"));
        }
        tasks.push((agent_type, action.to_string()));
    }
    if tasks.len() > max {
        return Err(format!(
            "plan lists {} sub-tasks, more than max_subtasks {max}",
            tasks.len()
        ));
    }
    Ok(tasks)
}

/// The join policy of a fan-out or supervisor step (validation made sure it parses).
fn join_of(step: &StepSpec) -> Join {
    let text = match (&step.fan_out, &step.supervisor) {
        (Some(f), _) => f.join.as_str(),
        (_, Some(s)) => s.join.as_str(),
        _ => "all",
    };
    Join::parse(text).unwrap_or(Join::All)
}

impl Tx<'_> {
    /// Issues every branch of a fan-out and arms the join deadline.
    pub fn start_fan_out(&mut self, s: &mut SagaState, step: &StepSpec) {
        let Some(spec) = &step.fan_out else { return };
        let agent = Self::agent_for(s, step);
        let branches: Vec<Branch> = match spec.count {
            Some(n) => (0..n).map(|_| branch(agent, None)).collect(),
            None => spec
                .branches
                .iter()
                .map(|b| branch(b.agent_type, None))
                .collect(),
        };
        let mut run = Run::new(&step.name, 1);
        run.stage = Stage::Work;
        run.branches = branches;
        s.current = Some(run);
        self.issue_crew(s, step);
    }

    /// Arms the join deadline and sends every branch's first attempt.
    fn issue_crew(&mut self, s: &mut SagaState, step: &StepSpec) {
        let deadline = self.now.saturating_add(step.timeout_ms);
        s.set_timer(TimerKind::StepTimeout, deadline);
        let n = s.current.as_ref().map_or(0, |r| r.branches.len());
        for i in 0..n {
            self.issue_branch(s, step, i, 1);
        }
        if n == 0 {
            self.join_check(s, step);
        }
    }

    /// Sends attempt `attempt` of branch `i`, due by the join deadline.
    fn issue_branch(&mut self, s: &mut SagaState, step: &StepSpec, i: usize, attempt: i32) {
        let deadline = s.timer.map_or(self.now, |t| t.due_ms);
        let Some(b) = s.current.as_mut().and_then(|r| r.branches.get_mut(i)) else {
            return;
        };
        b.attempt = attempt;
        b.state = BranchState::Waiting;
        let b = b.clone();
        let id = branch_id(s, step, i, attempt, Part::Step);
        let mut e = self.step_event(s, SagaEventKind::StepStarted, &step.name, attempt);
        e.command_id = Some(id.clone());
        self.out.push(SagaOutput::Event(e));
        let action = branch_action(step, &b, i);
        let coordination = match step.kind() {
            StepKind::Supervisor => Coordination::Hierarchical,
            _ => Coordination::FanOut,
        };
        let c = self.command(
            s,
            &step.name,
            id,
            b.agent_type,
            &action,
            coordination,
            attempt,
            deadline,
        );
        self.out.push(SagaOutput::Command(c));
    }

    /// A supervisor's plan arrived: its sub-tasks go out (or, for an empty plan, straight to the
    /// final request); a plan that cannot be run fails the planning attempt.
    pub fn plan_received(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        command: &str,
        output: &HashMap<String, String>,
    ) {
        let Some(sup) = &step.supervisor else { return };
        let plan = output.get("plan").map_or("", String::as_str);
        let tasks = match parse_plan(plan, sup.max_subtasks) {
            Ok(t) => t,
            Err(why) => {
                return self.step_failed(s, step, super::transitions::Cause::Failed(why));
            }
        };
        let attempt = s.current.as_ref().map_or(1, |r| r.attempt);
        let mut e = self.step_event(s, SagaEventKind::StepSucceeded, &step.name, attempt);
        e.command_id = Some(command.to_string());
        e.reason = Some(format!("plan: {} sub-task(s)", tasks.len()));
        self.out.push(SagaOutput::Event(e));
        if let Some(run) = s.current.as_mut() {
            run.stage = Stage::Work;
            run.branches = tasks
                .into_iter()
                .map(|(t, action)| branch(t, Some(action)))
                .collect();
        }
        self.issue_crew(s, step);
    }

    /// A branch's result: record it, re-issue a failed branch while attempts are left, then see
    /// whether the join is decided.
    pub fn branch_result(
        &mut self,
        s: &mut SagaState,
        step: &StepSpec,
        i: usize,
        succeeded: bool,
        error: String,
    ) {
        let Some(b) = s.current.as_ref().and_then(|r| r.branches.get(i)).cloned() else {
            return;
        };
        let id = branch_id(s, step, i, b.attempt, Part::Step);
        let kind = if succeeded {
            SagaEventKind::StepSucceeded
        } else {
            SagaEventKind::StepFailed
        };
        let mut e = self.step_event(s, kind, &step.name, b.attempt);
        e.command_id = Some(id);
        e.reason = (!succeeded).then(|| self.clip(&error));
        self.out.push(SagaOutput::Event(e));
        if !succeeded && b.attempt < step.retry.max_attempts {
            return self.issue_branch(s, step, i, b.attempt + 1);
        }
        let state = if succeeded {
            s.done.push(Done {
                branch: Some(i as u8),
                agent_type: Some(b.agent_type),
                ..Done::step(&step.name, b.attempt)
            });
            BranchState::Succeeded
        } else {
            BranchState::Failed
        };
        if let Some(b) = s.current.as_mut().and_then(|r| r.branches.get_mut(i)) {
            b.state = state;
        }
        self.join_check(s, step);
    }

    /// Closes the step if the join is met (or can no longer be); otherwise waits.
    fn join_check(&mut self, s: &mut SagaState, step: &StepSpec) {
        let Some(run) = s.current.as_ref() else {
            return;
        };
        let n = run.branches.len();
        let count = |st| run.branches.iter().filter(|b| b.state == st).count();
        let (ok, waiting) = (count(BranchState::Succeeded), count(BranchState::Waiting));
        let need = join_of(step).needed(n);
        if ok >= need {
            self.cancel_waiting(s, step, &format!("join met: {ok} of {n} succeeded"));
            self.join_met(s, step, ok, n);
        } else if ok + waiting < need {
            let why = format!("join needs {need} of {n} branches; {ok} succeeded, the rest failed");
            self.join_failed(s, step, why);
        }
    }

    /// The join deadline passed before the join was met.
    pub fn join_deadline(&mut self, s: &mut SagaState, step: &StepSpec) {
        let Some(run) = s.current.as_ref() else {
            return;
        };
        let n = run.branches.len();
        let ok = run
            .branches
            .iter()
            .filter(|b| b.state == BranchState::Succeeded)
            .count();
        let need = join_of(step).needed(n);
        let why = format!(
            "join needs {need} of {n} branches by the deadline ({} ms); {ok} succeeded",
            step.timeout_ms
        );
        self.join_failed(s, step, why);
    }

    fn join_met(&mut self, s: &mut SagaState, step: &StepSpec, ok: usize, n: usize) {
        s.timer = None;
        if step.supervisor.is_some() {
            // Hand the results back to the supervisor: the final request, attempts from 1.
            if let Some(run) = s.current.as_mut() {
                run.stage = Stage::Final;
                run.base = 0;
            }
            return self.issue_step(s, step, 1);
        }
        let output = HashMap::from([
            ("succeeded".to_string(), ok.to_string()),
            ("failed".to_string(), (n - ok).to_string()),
        ]);
        let mut e = self.step_event(s, SagaEventKind::StepSucceeded, &step.name, 1);
        e.reason = Some(format!("join met: {ok} of {n} branches succeeded"));
        self.out.push(SagaOutput::Event(e));
        s.done.push(Done::step(&step.name, 1));
        self.advance(s, step, &output);
    }

    fn join_failed(&mut self, s: &mut SagaState, step: &StepSpec, why: String) {
        self.cancel_waiting(s, step, &why);
        let mut e = self.step_event(s, SagaEventKind::StepFailed, &step.name, 1);
        e.reason = Some(why.clone());
        self.out.push(SagaOutput::Event(e));
        s.timer = None;
        self.give_up(s, step, 1, false, why);
    }

    /// Cancels every branch still out: a cancel is a compensation naming the branch's command,
    /// so an agent stops it, or undoes it if it finished in the meantime. None is awaited.
    fn cancel_waiting(&mut self, s: &mut SagaState, step: &StepSpec, why: &str) {
        let n = s.current.as_ref().map_or(0, |r| r.branches.len());
        for i in 0..n {
            let Some(b) = s.current.as_ref().and_then(|r| r.branches.get(i)).cloned() else {
                continue;
            };
            if b.state != BranchState::Waiting {
                continue;
            }
            self.out.push(SagaOutput::Cancel(CompensationCommand {
                command_id: branch_id(s, step, i, b.attempt, Part::Cancel),
                saga_id: s.saga_id.clone(),
                correlation_id: s.correlation_id.clone(),
                compensates_command_id: branch_id(s, step, i, b.attempt, Part::Step),
                step: step.name.clone(),
                agent_type: b.agent_type,
                action: "cancel".into(),
                attempt: b.attempt,
                reason: format!("not needed: {why}"),
                issued_at: self.now,
                partition_key: s.correlation_id.clone(),
                proof: None,
            }));
            if let Some(b) = s.current.as_mut().and_then(|r| r.branches.get_mut(i)) {
                b.state = BranchState::Cancelled;
            }
        }
    }
}

fn branch(agent_type: AgentType, action: Option<String>) -> Branch {
    Branch {
        agent_type,
        action,
        attempt: 1,
        state: BranchState::Waiting,
        vote: None,
    }
}

/// The action of branch `i`: a sub-task's own, a crew member's, or the step's.
fn branch_action(step: &StepSpec, b: &Branch, i: usize) -> String {
    b.action
        .clone()
        .or_else(|| {
            let spec = step.fan_out.as_ref()?.branches.get(i)?;
            spec.action.clone()
        })
        .unwrap_or_else(|| step.action.clone())
}

fn branch_id(s: &SagaState, step: &StepSpec, i: usize, attempt: i32, part: Part) -> String {
    id_of(
        &s.saga_id,
        &CommandRef {
            step: &step.name,
            attempt,
            branch: Some(i as u8),
            part,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_within_their_bound_and_bad_ones_say_why() {
        let plan = parse_plan("OBSERVER:collect-heap; ANALYST:diff-config;", 5).unwrap();
        assert_eq!(
            plan,
            [
                (AgentType::Observer, "collect-heap".to_string()),
                (AgentType::Analyst, "diff-config".to_string())
            ]
        );
        assert!(parse_plan("", 5).unwrap().is_empty());
        let long = "OBSERVER:a;OBSERVER:b;OBSERVER:c";
        assert!(parse_plan(long, 2)
            .unwrap_err()
            .contains("more than max_subtasks 2"));
        assert!(parse_plan("ROBOT:a", 5).unwrap_err().contains("ROBOT"));
        assert!(parse_plan("just-an-action", 5).is_err());
        assert!(parse_plan("OBSERVER:a/b", 5).is_err());
    }
}
