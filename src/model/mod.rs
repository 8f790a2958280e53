//! Domain records, one Rust type per `schemas/*.avsc` record (namespace `aura.v1`).
//! Field names are the contract in DESIGN.md; serde maps them to Avro one to one
//! (`Option<T>` is the union `["null", T]`, `i64` timestamps are `timestamp-millis`,
//! enum variants are the schema's SCREAMING_SNAKE_CASE symbols, in the schema's order).
//! Which type goes with which schema is declared once, in `codec::catalog`.

mod anomaly;
mod command;
mod consensus;
mod context;
mod correlation;
mod dead_letter;
mod escalation;
mod proof;
mod results;
mod routing;
mod saga;

pub use anomaly::{PersistencePoint, Severity, TdaAnomaly};
pub use command::{AgentCommand, CompensationCommand};
pub use consensus::{AgentVote, ConsensusDecision, ConsensusOutcome};
pub use context::{AgentRegistration, AgentStatus, FeatureFlag, RoutingFeedback, TdaContext};
pub use correlation::CorrelationEvent;
pub use dead_letter::{DeadLetter, DeadLetterStage};
pub use escalation::Escalation;
pub use proof::Proof;
pub use results::{AgentResult, ResultStatus};
pub use routing::{AgentType, Coordination, Layer};
pub use saga::{SagaEvent, SagaEventKind};
