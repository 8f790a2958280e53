//! Durable sagas: the pure core (no Kafka, no Avro, no I/O).
pub mod config;
pub mod graph;
pub mod validate;
pub mod workflows;

pub use config::{OnFailure, RetryPolicy, SagaConfig, StepSpec, WorkflowSpec};
pub use validate::Problem;
pub use workflows::{WorkflowError, Workflows};
