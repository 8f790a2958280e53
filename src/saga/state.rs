//! The durable state of one saga: everything needed to carry on after a crash, timers included.
//!
//! It is written as JSON to a compacted changelog keyed by `saga_id`, so it is kept small: command ids
//! are derived (`{saga_id}/{step}/{attempt}`, compensations `{saga_id}/{step}/undo/{attempt}`) rather
//! than stored, a saga has at most one pending timer, and a finished saga drops its routing context.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::model::{AgentType, Coordination, Layer};

/// Where a saga is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SagaStatus {
    /// Steps are running forward.
    Running,
    /// A step failed for good; completed steps are being undone, newest first.
    Compensating,
    Completed,
    Compensated,
    Failed,
}

impl SagaStatus {
    pub const ALL: [SagaStatus; 5] = [
        Self::Running,
        Self::Compensating,
        Self::Completed,
        Self::Compensated,
        Self::Failed,
    ];

    /// A metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Compensating => "compensating",
            Self::Completed => "completed",
            Self::Compensated => "compensated",
            Self::Failed => "failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Failed)
    }
}

/// What the current attempt is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The command is out; its result or its timeout comes next.
    Waiting,
    /// The attempt's FAILED result arrived; the retry timer is pending.
    Failed,
    /// The attempt timed out; the retry timer is pending.
    TimedOut,
}

/// The step (or, while compensating, the compensation) in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub step: String,
    /// 1-based. Attempt numbers continue across the visits of a step on a bounded loop, so
    /// command ids stay unique; a supervisor counts its planning attempts, then its final ones.
    pub attempt: i32,
    pub phase: Phase,
    /// Attempts used by earlier visits of this step (loops): retries count from here.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub base: i32,
    /// Where a supervisor step is.
    #[serde(default, skip_serializing_if = "Stage::is_plan")]
    pub stage: Stage,
    /// A coordination step's branches, ballots or sub-tasks, by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Branch>,
}

impl Run {
    pub fn new(step: &str, attempt: i32) -> Self {
        Self {
            step: step.to_string(),
            attempt,
            phase: Phase::Waiting,
            base: 0,
            stage: Stage::Plan,
            branches: Vec::new(),
        }
    }
}

/// The phases of a supervisor step (other steps stay at `Plan`, their only phase).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The step's own command (a supervisor's plan request) is out.
    #[default]
    Plan,
    /// The sub-tasks are out; the join closes this phase.
    Work,
    /// The results are handed back to the supervisor (`final_action`).
    Final,
}

impl Stage {
    fn is_plan(&self) -> bool {
        *self == Stage::Plan
    }
}

/// One branch of a fan-out, one sub-task of a supervisor, or one ballot of a consensus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub agent_type: AgentType,
    /// A sub-task's action, from the supervisor's plan (workflow branches read theirs from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// 1-based; a failed branch is re-issued at once while the step has attempts left.
    /// Defaults (attempt 1, waiting) are left out of the JSON: most branches are in them.
    #[serde(default = "first_attempt", skip_serializing_if = "is_first_attempt")]
    pub attempt: i32,
    #[serde(default, skip_serializing_if = "BranchState::is_waiting")]
    pub state: BranchState,
    /// A ballot's counted vote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vote: Option<Vote>,
}

fn first_attempt() -> i32 {
    1
}

fn is_first_attempt(n: &i32) -> bool {
    *n == 1
}

/// Where one branch stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchState {
    #[default]
    Waiting,
    Succeeded,
    /// Failed on its last attempt.
    Failed,
    /// No longer needed after the join; a cancel command went out.
    Cancelled,
    /// A ballot whose vote was counted.
    Voted,
}

impl BranchState {
    fn is_waiting(&self) -> bool {
        *self == BranchState::Waiting
    }
}

/// A vote as counted: who, for what, with which weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub agent_id: String,
    pub choice: String,
    pub weight: f64,
}

/// A step that succeeded, in completion order; compensation walks this list backwards. A
/// fan-out's or supervisor's branches are listed one by one as they succeed (each is undone on
/// its own), and the step itself once it closes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub step: String,
    /// The attempt that succeeded (its command id is the one compensations name).
    pub attempt: i32,
    /// The branch that succeeded, for a branch's entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<u8>,
    /// The branch's agent type (sub-tasks are not in the workflow, so it is kept here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<AgentType>,
    /// A consensus step's decision, or an approval's verdict (`rejected (timed out)` when the
    /// timeout gave it), as the edge read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
}

impl Done {
    pub fn step(step: &str, attempt: i32) -> Self {
        Self {
            step: step.to_string(),
            attempt,
            branch: None,
            agent_type: None,
            decision: None,
        }
    }
}

/// The step whose last attempt failed, sending the saga to compensation or failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub step: String,
    pub attempt: i32,
    /// The last attempt timed out rather than reporting FAILED.
    pub timed_out: bool,
    pub reason: String,
}

/// Routing context copied into every command the saga issues. Dropped when the saga finishes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_id: Option<String>,
    pub layer: Layer,
    pub coordination: Coordination,
    pub urgency: f64,
    pub complexity: f64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub explanation: String,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub attributes: HashMap<String, String>,
}

/// What a timer does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The current step attempt ran out of time: it counts as failed.
    StepTimeout,
    /// Backoff is over: issue the next attempt of the current step.
    Retry,
    /// The current compensation attempt ran out of time.
    CompensationTimeout,
    /// Backoff is over: issue the next compensation attempt.
    CompensationRetry,
    /// A finished saga's retention is over: delete its state.
    Expire,
}

/// A timer as stored in the saga (the saga id is the state's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingTimer {
    pub kind: TimerKind,
    /// Milliseconds since the Unix epoch.
    pub due_ms: i64,
    /// Increases with every timer the saga sets, so a fired timer that was since replaced is stale.
    pub seq: u32,
}

/// A timer as the runtime sees it: which saga, what, when.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub saga_id: String,
    pub kind: TimerKind,
    pub due_ms: i64,
    pub seq: u32,
}

/// One saga, keyed by `saga_id` in the store and the changelog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaState {
    pub saga_id: String,
    pub correlation_id: String,
    pub workflow: String,
    pub status: SagaStatus,
    /// The first `max_anomaly_ids` anomalies of the incident, in arrival order.
    pub anomaly_ids: Vec<String>,
    /// Anomalies that joined beyond `anomaly_ids`' cap (counted, not stored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub more_anomalies: u32,
    pub route: RouteContext,
    /// Agent types routing reassigned by step name (capabilities); empty when none were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub agent_overrides: BTreeMap<String, AgentType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Run>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<Done>,
    /// While compensating: `done[..cursor]` are not compensated yet; the current compensation is
    /// `done[cursor - 1]`. After COMPENSATION_FAILED it still points at the step that failed.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub cursor: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer: Option<PendingTimer>,
    #[serde(default)]
    pub timer_seq: u32,
    /// How often each bounded loop edge (`from>to`) was taken.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub loops: BTreeMap<String, u32>,
    /// The W3C `traceparent` of the record that started the saga: its timer-driven outputs
    /// (retries, timeouts) continue this trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

impl SagaState {
    /// The pending timer with its saga id, as the timer index holds it.
    pub fn timer(&self) -> Option<Timer> {
        self.timer.map(|t| Timer {
            saga_id: self.saga_id.clone(),
            kind: t.kind,
            due_ms: t.due_ms,
            seq: t.seq,
        })
    }

    /// Replaces the pending timer.
    pub(crate) fn set_timer(&mut self, kind: TimerKind, due_ms: i64) {
        self.timer_seq = self.timer_seq.wrapping_add(1);
        self.timer = Some(PendingTimer {
            kind,
            due_ms,
            seq: self.timer_seq,
        });
    }
}

/// The id of a step attempt's command: `{saga_id}/{step}/{attempt}`.
pub fn command_id(saga_id: &str, step: &str, attempt: i32) -> String {
    format!("{saga_id}/{step}/{attempt}")
}

/// The id of a compensation attempt's command: `{saga_id}/{step}/undo/{attempt}`.
pub fn compensation_id(saga_id: &str, step: &str, attempt: i32) -> String {
    format!("{saga_id}/{step}/undo/{attempt}")
}

/// The id of any command the saga issues, from its parts: `{saga_id}/{step}[/b{i}|/v{i}]
/// [/undo|/cancel|/final]/{attempt}`. A ballot's "attempt" is the vote's round.
pub fn id_of(saga_id: &str, r: &CommandRef<'_>) -> String {
    let mut id = format!("{saga_id}/{}", r.step);
    match (r.branch, r.part) {
        (Some(i), Part::Ballot) => id.push_str(&format!("/v{i}")),
        (Some(i), _) => id.push_str(&format!("/b{i}")),
        (None, _) => {}
    }
    match r.part {
        Part::Undo => id.push_str("/undo"),
        Part::Cancel => id.push_str("/cancel"),
        Part::Final => id.push_str("/final"),
        Part::Step | Part::Ballot => {}
    }
    id.push_str(&format!("/{}", r.attempt));
    id
}

/// The deterministic id of a consensus decision: `{saga_id}/{step}/decision/{round}`, so a
/// decision written twice shows as the same id.
pub fn decision_id(saga_id: &str, step: &str, round: i32) -> String {
    format!("{saga_id}/{step}/decision/{round}")
}

/// Which command of a step an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The step's (or branch's) own command.
    Step,
    /// Its compensation.
    Undo,
    /// A branch no longer needed.
    Cancel,
    /// A supervisor's final command.
    Final,
    /// A consensus ballot.
    Ballot,
}

/// A command id taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRef<'a> {
    pub step: &'a str,
    pub attempt: i32,
    /// The branch (or ballot) index.
    pub branch: Option<u8>,
    pub part: Part,
}

impl CommandRef<'_> {
    pub fn compensation(&self) -> bool {
        self.part == Part::Undo
    }
}

/// Parses an id made by [`id_of`] (or [`command_id`], [`compensation_id`]) for `saga_id`;
/// `None` for anything else. Step names hold no `/` (validation), so the split is unambiguous
/// even if saga ids do.
pub fn parse_command_id<'a>(saga_id: &str, id: &'a str) -> Option<CommandRef<'a>> {
    let rest = id.strip_prefix(saga_id)?.strip_prefix('/')?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    let attempt: i32 = parts.pop()?.parse().ok().filter(|a| *a >= 1)?;
    let step = *parts.first().filter(|s| !s.is_empty())?;
    let index = |t: &str, prefix: char| -> Option<u8> {
        let n = t.strip_prefix(prefix)?;
        (!n.starts_with('+')).then(|| n.parse().ok())?
    };
    let (branch, part) = match parts[1..] {
        [] => (None, Part::Step),
        ["undo"] => (None, Part::Undo),
        ["final"] => (None, Part::Final),
        [b] if b.starts_with('v') => (Some(index(b, 'v')?), Part::Ballot),
        [b] => (Some(index(b, 'b')?), Part::Step),
        [b, "undo"] => (Some(index(b, 'b')?), Part::Undo),
        [b, "cancel"] => (Some(index(b, 'b')?), Part::Cancel),
        _ => return None,
    };
    Some(CommandRef {
        step,
        attempt,
        branch,
        part,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_ids_round_trip_even_with_slashes_in_the_saga_id() {
        let saga = "src/a/1700000000";
        let id = command_id(saga, "collect", 3);
        let c = parse_command_id(saga, &id).unwrap();
        assert_eq!((c.step, c.attempt, c.compensation()), ("collect", 3, false));
        let id = compensation_id(saga, "apply", 2);
        let c = parse_command_id(saga, &id).unwrap();
        assert_eq!((c.step, c.attempt, c.compensation()), ("apply", 2, true));
        for (branch, part) in [
            (None, Part::Final),
            (Some(3), Part::Step),
            (Some(0), Part::Undo),
            (Some(7), Part::Cancel),
            (Some(2), Part::Ballot),
        ] {
            let want = CommandRef {
                step: "crew",
                attempt: 2,
                branch,
                part,
            };
            let id = id_of(saga, &want);
            assert_eq!(parse_command_id(saga, &id), Some(want), "{id}");
        }
        assert_eq!(
            id_of(
                saga,
                &CommandRef {
                    step: "crew",
                    attempt: 1,
                    branch: Some(1),
                    part: Part::Undo
                }
            ),
            "src/a/1700000000/crew/b1/undo/1"
        );
        for bad in [
            "other/collect/1",
            "src/a/1700000000/collect/0",
            "src/a/1700000000/collect/x",
            "src/a/1700000000//1",
            "src/a/1700000000/a/x/1",
            "src/a/1700000000/a/b/1",
            "src/a/1700000000/a/b+1/1",
            "src/a/1700000000/a/v1/undo/1",
            "src/a/1700000000/a/b1/final/1",
        ] {
            assert_eq!(parse_command_id(saga, bad), None, "{bad}");
        }
    }
}
