//! Simulation: agents that answer commands with configurable latency and failure. The demo
//! runs them in process against the embedded log; `aura agents` runs the same logic on Kafka;
//! [`run_sagas`] runs them against the saga engine alone, in virtual time, for tests of whole
//! workflows.

pub mod agents;
pub mod coordination;
pub mod saga_run;

pub use agents::{AgentProfile, SimulatedAgents};
pub use saga_run::{run_sagas, SagaRunStats};
