//! Simulation: agents that answer commands with configurable latency and failure. The demo
//! runs them in process against the embedded log; `aura agents` runs the same logic on Kafka.

pub mod agents;

pub use agents::{AgentProfile, SimulatedAgents};
