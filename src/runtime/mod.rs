//! Runtimes: where records come from and where outputs go. Two kinds run the same
//! processors: Kafka ([`kafka`]) and the in-memory [`EmbeddedLog`]. [`queries`] lets the
//! HTTP server read the state the Kafka runtime's partition tasks own.

mod embedded;
mod embedded_runner;
mod handler;
pub mod kafka;
pub mod partitioner;
pub mod queries;
mod readiness;
mod record;
pub mod trace;

pub use embedded::EmbeddedLog;
pub use embedded_runner::EmbeddedRunner;
pub use handler::RecordHandler;
pub use queries::StateQueries;
pub use readiness::Readiness;
pub use record::{InputRecord, OutputRecord};
