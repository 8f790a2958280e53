//! Processors: synchronous, I/O-free steps from decoded events to output events.
//!
//! A processor never sees Kafka or Avro. The runtime decodes records into [`Event`]s, hands
//! them to the processor of their partition, and encodes and produces the [`Output`]s it
//! emits. So the same processor runs on Kafka, on the embedded log, and in unit tests.

mod anomaly_router;
mod enrich;
mod validate;

pub use anomaly_router::{AnomalyRouter, RouterSettings};
pub use validate::{validate, ValidationError};

use crate::model::{AgentCommand, TdaAnomaly};

/// A decoded input record.
#[derive(Debug, Clone)]
pub enum Event {
    /// An anomaly from `tda.anomalies`.
    Anomaly(TdaAnomaly),
}

/// What processors emit; the runtime picks the topic and key for each.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// To `orchestration.commands`, keyed by saga id.
    Command(AgentCommand),
}

impl Output {
    /// The record key: the saga id for everything saga-related.
    pub fn key(&self) -> &str {
        match self {
            Output::Command(c) => &c.saga_id,
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
}

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
}
