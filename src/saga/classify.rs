//! Which command of the saga a result answers, and whether it is to be applied. A result already
//! applied is a duplicate; one for a superseded attempt, a cancelled branch or a finished saga is
//! late; one for a command never issued is unknown; one from the wrong agent type is rejected.

use crate::model::{AgentResult, AgentType};

use super::config::{StepSpec, WorkflowSpec};
use super::effects::Ignored;
use super::escalate::TIMED_OUT;
use super::state::{
    parse_command_id, BranchState, CommandRef, Part, Phase, SagaState, SagaStatus, Stage,
};
use super::transitions::Tx;

/// What an applicable result answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The step's single command in flight (a task, a plan, a final request, a hand-over).
    Step,
    /// Branch `i` of a fan-out or supervisor.
    Branch(usize),
    /// The compensation in flight.
    Compensation,
}

fn check_type(expected: AgentType, got: AgentType) -> Result<(), Ignored> {
    if expected == got {
        Ok(())
    } else {
        Err(Ignored::Rejected { expected, got })
    }
}

pub fn classify(s: &SagaState, wf: &WorkflowSpec, r: &AgentResult) -> Result<Target, Ignored> {
    if r.saga_id != s.saga_id {
        return Err(Ignored::Unknown);
    }
    let c = parse_command_id(&s.saga_id, &r.command_id).ok_or(Ignored::Unknown)?;
    let step = wf.step(c.step).ok_or(Ignored::Unknown)?;
    match c.part {
        // Votes come as votes; cancels are not awaited.
        Part::Ballot => return Err(Ignored::Unknown),
        Part::Cancel => return Err(Ignored::Late),
        _ => {}
    }
    let compensating = s.status == SagaStatus::Compensating;
    if let Some(run) = s.current.as_ref().filter(|run| run.step == c.step) {
        if compensating {
            if c.compensation() {
                if let Some(t) = in_flight_compensation(s, step, &c, r)? {
                    return Ok(t);
                }
            }
        } else if let Some(i) = c.branch.map(usize::from) {
            if run.stage == Stage::Work && c.part == Part::Step {
                let b = run.branches.get(i).ok_or(Ignored::Unknown)?;
                return match (c.attempt.cmp(&b.attempt), b.state) {
                    (std::cmp::Ordering::Less, _) => Err(Ignored::Late),
                    (std::cmp::Ordering::Greater, _) => Err(Ignored::Unknown),
                    (_, BranchState::Waiting) => {
                        check_type(b.agent_type, r.agent_type).map(|_| Target::Branch(i))
                    }
                    (_, BranchState::Cancelled) => Err(Ignored::Late),
                    (_, BranchState::Voted) => Err(Ignored::Unknown),
                    _ => Err(Ignored::Duplicate),
                };
            }
        } else {
            let final_part = c.part == Part::Final;
            let same_stage = final_part == (run.stage == Stage::Final) && run.stage != Stage::Work;
            if same_stage && c.attempt == run.attempt {
                return match run.phase {
                    Phase::Waiting => {
                        let (expected, _, _) = Tx::task_of(s, step);
                        check_type(expected, r.agent_type).map(|_| Target::Step)
                    }
                    Phase::Failed => Err(Ignored::Duplicate),
                    Phase::TimedOut => Err(Ignored::Late),
                };
            }
            if same_stage && c.attempt < run.attempt {
                return Err(Ignored::Late);
            }
            // A supervisor's plan answered again once its sub-tasks are out.
            if !final_part && run.stage != Stage::Plan {
                return Err(if c.attempt == run.attempt && run.stage == Stage::Work {
                    Ignored::Duplicate
                } else {
                    Ignored::Late
                });
            }
        }
    }
    settled(s, &c)
}

/// The compensation in flight, when `c` names it.
fn in_flight_compensation(
    s: &SagaState,
    step: &StepSpec,
    c: &CommandRef<'_>,
    r: &AgentResult,
) -> Result<Option<Target>, Ignored> {
    let Some(run) = s.current.as_ref() else {
        return Ok(None);
    };
    let Some(done) = s.cursor.checked_sub(1).and_then(|i| s.done.get(i)) else {
        return Ok(None);
    };
    if done.branch != c.branch {
        return Ok(None);
    }
    if c.attempt < run.attempt {
        return Err(Ignored::Late);
    }
    if c.attempt > run.attempt {
        return Ok(None);
    }
    match run.phase {
        Phase::Waiting => check_type(Tx::compensator_for(s, step, done), r.agent_type)
            .map(|_| Some(Target::Compensation)),
        Phase::Failed => Err(Ignored::Duplicate),
        Phase::TimedOut => Err(Ignored::Late),
    }
}

/// A result for a command that is not in flight: one the saga already applied, or outlived.
fn settled(s: &SagaState, c: &CommandRef<'_>) -> Result<Target, Ignored> {
    let entry = |d: &&super::state::Done| d.step == c.step && d.branch == c.branch;
    let done_at = s.done.iter().rposition(|d| entry(&d));
    if c.compensation() {
        return Err(match done_at {
            // Undone already (or skipped): a repeat of the result that moved the cursor past it.
            Some(i) if s.status != SagaStatus::Running && i >= s.cursor => Ignored::Duplicate,
            // The compensation that failed for good, or an older attempt of it.
            Some(i) if s.status == SagaStatus::Failed && i + 1 == s.cursor => Ignored::Late,
            _ => Ignored::Unknown,
        });
    }
    if let Some(d) = s.done.iter().find(|d| entry(d) && d.attempt == c.attempt) {
        // An approval nobody gave in time was settled by its timeout: an answer now is late.
        let timed_out = d
            .decision
            .as_deref()
            .is_some_and(|v| v.ends_with(TIMED_OUT));
        return Err(if timed_out {
            Ignored::Late
        } else {
            Ignored::Duplicate
        });
    }
    // A branch of a step that has closed: cancelled, or outlived by the join.
    if c.branch.is_some()
        && s.done
            .iter()
            .any(|d| d.step == c.step && d.branch.is_none())
    {
        return Err(Ignored::Late);
    }
    if let Some(i) = done_at {
        let ok = s.done[i].attempt;
        return Err(
            if c.attempt < ok || c.branch.is_some() || c.part == Part::Final {
                Ignored::Late
            } else {
                Ignored::Unknown
            },
        );
    }
    match &s.failure {
        Some(f)
            if f.step == c.step && c.branch.is_none() && c.attempt == f.attempt && !f.timed_out =>
        {
            Err(Ignored::Duplicate)
        }
        Some(f) if f.step == c.step && (c.attempt <= f.attempt || c.branch.is_some()) => {
            Err(Ignored::Late)
        }
        _ if c.branch.is_some() && s.status.is_terminal() => Err(Ignored::Late),
        _ => Err(Ignored::Unknown),
    }
}
