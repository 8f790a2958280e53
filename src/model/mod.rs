//! Domain records, one Rust type per `schemas/*.avsc` record (namespace `aura.v1`).
//! Field names are the contract in DESIGN.md; serde maps them to Avro one to one.

mod anomaly;
mod context;
mod routing;

pub use anomaly::{PersistencePoint, Severity, TdaAnomaly};
pub use context::{AgentRegistration, AgentStatus, FeatureFlag, RoutingFeedback, TdaContext};
pub use routing::{AgentType, Coordination, Layer};
