//! Processors: synchronous, I/O-free steps from decoded events to output events.
//!
//! A processor never sees Kafka or Avro. The runtime decodes records into [`Event`]s, hands
//! them to the processor of their partition, and encodes and produces the [`Output`]s it
//! emits. So the same processor runs on Kafka, on the embedded log, and in unit tests.

mod anomaly_router;
mod dispatch;
mod enrich;
mod incident_task;
mod incidents;
mod learner;
mod rekey;
mod saga;
mod saga_gauges;
#[cfg(test)]
mod saga_votes_tests;
mod validate;
mod vote_refusal;

pub use anomaly_router::{AnomalyRouter, RouterSettings};
pub use dispatch::Dispatcher;
pub use incident_task::{Home, IncidentTask, IncidentTaskParts};
pub use incidents::{incident_key, Correlation, IncidentStore, INCIDENT_STORE};
pub use learner::Learner;
pub use rekey::Rekeyer;
pub use saga::{SagaProcessor, SAGA_STORE};
pub use validate::{caps, validate, ValidationError};
pub use vote_refusal::VoteRefusal;

use crate::model::{
    AgentCommand, AgentResult, AgentVote, CompensationCommand, ConsensusDecision, CorrelationEvent,
    Escalation, RoutingFeedback, SagaEvent, TdaAnomaly,
};

/// A decoded input record.
#[derive(Debug, Clone)]
pub enum Event {
    /// An anomaly from `tda.anomalies`, or from the re-key topic.
    Anomaly(TdaAnomaly),
    /// An agent's answer from `agent.results`.
    AgentResult(AgentResult),
    /// An agent's vote on a consensus ballot from `agent.votes`.
    AgentVote(AgentVote),
    /// A confirmation or correction of a route from `orchestration.feedback`.
    Feedback(RoutingFeedback),
}

/// What processors emit; the runtime picks the topic and key for each (`crate::topology`).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// To `orchestration.commands`, keyed by the correlation key (`partition_key`).
    Command(AgentCommand),
    /// To `orchestration.correlations`, keyed by incident id: anomalies that joined an
    /// incident without a command of their own.
    Correlation(CorrelationEvent),
    /// To the re-key topic, keyed by correlation id: an anomaly that arrived in a partition
    /// other than its correlation key's (docs/KEYS.md).
    Rekeyed(TdaAnomaly),
    /// To `orchestration.sagas`.
    SagaEvent(SagaEvent),
    /// To `orchestration.compensations`.
    Compensation(CompensationCommand),
    /// To `orchestration.escalations`.
    Escalation(Escalation),
    /// To `orchestration.decisions`: a consensus step's outcome and tally.
    Decision(ConsensusDecision),
    /// Not a record: the outputs after it continue this W3C trace context (a saga's, for its
    /// timer-driven outputs), as if it had been the `traceparent` of their input.
    Trace(String),
    /// A write to the processor's store, through to its changelog topic; `None` deletes.
    State {
        store: &'static str,
        key: String,
        value: Option<Vec<u8>>,
    },
    /// A write to a global store's changelog: read in full by every instance, so it is
    /// partitioned by its key (one key, one partition, last write wins), not by the task's
    /// partition; `None` deletes.
    GlobalState {
        store: &'static str,
        key: String,
        value: Option<Vec<u8>>,
    },
}

impl Output {
    /// The record key (docs/KEYS.md): the correlation key for commands and re-keyed anomalies,
    /// the incident id for correlations, the saga id for the rest of the saga's records.
    pub fn key(&self) -> &str {
        match self {
            Output::Command(c) => &c.partition_key,
            Output::Correlation(c) => &c.incident_id,
            Output::Rekeyed(a) => &a.correlation_id,
            Output::SagaEvent(e) => &e.saga_id,
            Output::Compensation(c) => &c.saga_id,
            Output::Escalation(e) => &e.saga_id,
            Output::Decision(d) => &d.saga_id,
            Output::State { key, .. } | Output::GlobalState { key, .. } => key,
            Output::Trace(_) => "",
        }
    }
}

/// Why a processor refused an event. Both classes are poison: the record goes to the
/// dead-letter topic and its partition moves on.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The event breaks a data contract (stage VALIDATE).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The processor could not handle a valid event (stage PROCESS).
    #[error("{0}")]
    Failed(String),
    /// An agent's answer failed authentication (stage VALIDATE, code `auth_*`).
    #[error(transparent)]
    Unauthenticated(#[from] crate::auth::Rejection),
    /// A vote the saga refuses to count: not asked for, or for no option (stage VALIDATE).
    #[error(transparent)]
    Vote(#[from] VoteRefusal),
}

/// A changelog record that a restore could not read back, and why.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct Unreadable(pub String);

/// One step of the stream: events in, outputs out.
///
/// Processors are owned by one partition's task, so `&mut self` needs no locking; anything
/// shared across partitions (tables, caches) is behind `Arc` and read-mostly.
pub trait Processor: Send {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// Handles one event, pushing outputs to `out`. `now_ms` is the processing time, injected
    /// so tests control the clock.
    fn process(
        &mut self,
        event: Event,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError>;

    /// Called periodically with the current time, for timers. Most processors have none.
    fn on_tick(&mut self, _now_ms: i64, _out: &mut Vec<Output>) {}

    /// The stores this processor keeps. Each is written through to the compacted topic
    /// `<group.id>-<store>-changelog` and restored from it before any input is processed.
    fn stores(&self) -> &'static [&'static str] {
        &[]
    }

    /// Applies one changelog record while restoring; `None` is a tombstone.
    fn restore(&mut self, _store: &str, _key: &str, _value: Option<&[u8]>) {}

    /// [`Processor::restore`], saying when the record could not be read back (a record of
    /// another version, say). The processor has then dropped the key, as for a tombstone: its
    /// older state is stale. The runtime sends the record to the dead-letter topic with the
    /// reason and the task goes on. By default every record is readable.
    fn try_restore(
        &mut self,
        store: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), Unreadable> {
        self.restore(store, key, value);
        Ok(())
    }

    /// A read-only view of `key` in one of [`Processor::stores`], for state queries over HTTP;
    /// `None` when the store does not hold the key.
    fn query(&self, _store: &str, _key: &str) -> Option<serde_json::Value> {
        None
    }
}
