//! `aura.v1.SagaEvent`: the saga lifecycle, published on `orchestration.sagas`, keyed by `saga_id`.

use serde::{Deserialize, Serialize};

/// What happened to a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SagaEventKind {
    Started,
    StepStarted,
    StepSucceeded,
    StepFailed,
    RetryScheduled,
    StepTimedOut,
    Compensating,
    Compensated,
    CompensationFailed,
    Completed,
    Failed,
}

/// One transition in the life of a saga.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SagaEvent {
    pub saga_id: String,
    pub correlation_id: String,
    pub workflow: String,
    pub kind: SagaEventKind,
    /// `None` for saga-level transitions (STARTED, COMPLETED, ...).
    pub step: Option<String>,
    pub command_id: Option<String>,
    /// 0 for saga-level transitions.
    pub attempt: i32,
    /// The failure, the timeout or the rule behind the transition.
    pub reason: Option<String>,
    /// When the retry fires, for RETRY_SCHEDULED; milliseconds since the Unix epoch.
    pub retry_at: Option<i64>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
