//! What one saga input produces: records to publish, the timer change, the state change, and
//! whether the input was ignored (so the runtime can count it).

use crate::model::{
    AgentCommand, AgentType, CompensationCommand, ConsensusDecision, Escalation, SagaEvent,
};

use super::state::Timer;

/// A record for an output topic; every one is keyed by `saga_id`.
#[derive(Debug, Clone, PartialEq)]
pub enum SagaOutput {
    /// To `orchestration.commands`.
    Command(AgentCommand),
    /// To `orchestration.sagas`.
    Event(SagaEvent),
    /// To `orchestration.compensations`.
    Compensation(CompensationCommand),
    /// To `orchestration.escalations`.
    Escalation(Escalation),
    /// To `orchestration.decisions`: a consensus step's outcome, with its tally.
    Decision(ConsensusDecision),
    /// To `orchestration.compensations`: a fan-out branch no longer needed after its join
    /// (`action = "cancel"`, `compensates_command_id` = the branch's command). Not awaited.
    Cancel(CompensationCommand),
}

impl SagaOutput {
    pub fn saga_id(&self) -> &str {
        match self {
            Self::Command(c) => &c.saga_id,
            Self::Event(e) => &e.saga_id,
            Self::Compensation(c) => &c.saga_id,
            Self::Escalation(e) => &e.saga_id,
            Self::Decision(d) => &d.saga_id,
            Self::Cancel(c) => &c.saga_id,
        }
    }
}

/// How the saga's single pending timer changed.
#[derive(Debug, Clone, PartialEq)]
pub enum TimerUpdate {
    Unchanged,
    /// Replaces any timer the saga had.
    Set(Timer),
    /// The saga has no pending timer any more.
    Clear,
}

/// What to write to the saga store and its changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateChange {
    /// Nothing to write.
    Unchanged,
    /// Write the new state.
    Put,
    /// Delete the saga (a tombstone on the changelog).
    Delete,
}

/// Why an input changed nothing. Each is idempotent; the runtime counts them by [`Ignored::label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// A result already applied, or an anomaly already joined.
    Duplicate,
    /// A result for an attempt that was superseded (timed out, retried) or a saga that has finished;
    /// a join for a finished saga.
    Late,
    /// A result for a command this saga never issued, or for no saga at all.
    Unknown,
    /// A result for the current command (or a vote on a ballot) from an agent type other than
    /// the one commanded.
    Rejected { expected: AgentType, got: AgentType },
    /// A vote naming no ballot this saga sent: the agent was not asked.
    NotAsked,
    /// A vote for an option the consensus step does not offer.
    Invalid,
    /// A timer that was replaced or cleared since it was indexed, or is not due yet.
    StaleTimer,
}

impl Ignored {
    /// A metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Late => "late",
            Self::Unknown => "unknown",
            Self::Rejected { .. } => "rejected",
            Self::NotAsked => "not_asked",
            Self::Invalid => "invalid",
            Self::StaleTimer => "stale_timer",
        }
    }
}

/// The effects of one input on one saga.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// In the order they must be published.
    pub outputs: Vec<SagaOutput>,
    pub timer: TimerUpdate,
    pub state: StateChange,
    /// `Some` when the input was ignored; `outputs` is then empty and nothing changed.
    pub ignored: Option<Ignored>,
}

impl Effects {
    pub(crate) fn ignored(why: Ignored) -> Self {
        Self {
            outputs: Vec::new(),
            timer: TimerUpdate::Unchanged,
            state: StateChange::Unchanged,
            ignored: Some(why),
        }
    }

    /// A state change with nothing to publish (an anomaly joined).
    pub(crate) fn put() -> Self {
        Self {
            outputs: Vec::new(),
            timer: TimerUpdate::Unchanged,
            state: StateChange::Put,
            ignored: None,
        }
    }

    /// The saga events among the outputs, for tests and logs.
    pub fn events(&self) -> impl Iterator<Item = &SagaEvent> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Event(e) => Some(e),
            _ => None,
        })
    }

    /// The agent commands among the outputs.
    pub fn commands(&self) -> impl Iterator<Item = &AgentCommand> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Command(c) => Some(c),
            _ => None,
        })
    }

    /// The compensation commands among the outputs.
    pub fn compensations(&self) -> impl Iterator<Item = &CompensationCommand> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Compensation(c) => Some(c),
            _ => None,
        })
    }

    /// The decisions among the outputs.
    pub fn decisions(&self) -> impl Iterator<Item = &ConsensusDecision> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Decision(d) => Some(d),
            _ => None,
        })
    }

    /// The cancel commands among the outputs.
    pub fn cancels(&self) -> impl Iterator<Item = &CompensationCommand> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Cancel(c) => Some(c),
            _ => None,
        })
    }

    /// The escalations among the outputs.
    pub fn escalations(&self) -> impl Iterator<Item = &Escalation> {
        self.outputs.iter().filter_map(|o| match o {
            SagaOutput::Escalation(e) => Some(e),
            _ => None,
        })
    }
}
