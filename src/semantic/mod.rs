//! The semantic engine: from a TDA anomaly to a pattern, scores and a route, with an explanation. Pure and
//! synchronous (no I/O, no Kafka, no Avro); the processors call [`Engine::assess`] once per anomaly.
//!
//! # Layout
//! - [`diagram`]: what infinite, missing and malformed deaths mean (the rules live there only)
//! - [`features`]: lifetimes, total persistence, persistent entropy, significant features, Betti check
//! - [`sliced_wasserstein`], [`bottleneck`]: diagram distances (fast default; exact for audits)
//! - [`embedding`]: the scale-normalized vectorization that matching compares
//! - [`patterns`]: the pattern library file (`topologies/patterns.toml`)
//! - [`matcher`]: nearest prototypes, calibrated confidence, `unknown`
//! - [`complexity`]: semantic complexity; [`urgency`]: urgency, with running per-source baselines
//! - [`routing`]: capability routing and the route cache
//! - [`learning`]: online updates from feedback, bounded per source; [`learned`]: the learned library
//!   as a global table (its changelog record, last write wins); [`fit`]: prototypes and metric from a labelled dataset
//! - [`dataset`]: labelled JSON lines; [`archetypes`]: the synthetic generator; [`eval`]: accuracy reports
//! - [`engine`]: [`Engine`], which ties them together
//! - [`config`]: `[semantic]` configuration

pub mod archetypes;
pub mod bottleneck;
pub mod complexity;
pub mod config;
pub mod dataset;
pub mod diagram;
pub mod embedding;
pub mod engine;
pub mod eval;
pub mod features;
pub mod fit;
pub mod flags;
pub mod learned;
pub mod learning;
pub mod matcher;
pub mod patterns;
pub mod routing;
pub mod sliced_wasserstein;
pub mod urgency;

pub use config::SemanticConfig;
pub use dataset::{Label, LabelledAnomaly, RouteLabel};
pub use engine::{Assessment, Engine};
pub use patterns::PatternLibrary;
pub use routing::{Route, RouterStats};
pub use sliced_wasserstein::SlicedWasserstein;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod learning_tests;
#[cfg(test)]
mod tests;
