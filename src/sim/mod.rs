//! Simulation: agents that answer commands with configurable latency and failure, and a
//! virtual-time run of sagas against them. The demo uses it in process; the same agent logic
//! will answer on Kafka for `aura agents`.

pub mod agents;
pub mod coordination;
pub mod saga_run;

pub use agents::{AgentProfile, SimulatedAgents};
pub use saga_run::{run_sagas, SagaRunStats};
