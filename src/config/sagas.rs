//! The `[sagas]` table: durable workflows driven by agent results.

use std::path::PathBuf;

use serde::Deserialize;

use crate::saga::SagaConfig;

/// Whether and how incidents run as sagas.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SagasConfig {
    /// When true, each routed incident starts (or joins) a saga keyed by saga id: commands come
    /// from the saga's steps, `agent.results` moves it on, and its state is kept in a
    /// changelogged store. When false, each anomaly gives one command and nothing follows it.
    pub enabled: bool,
    /// A folder of workflow files; without it, the built-in `topologies/workflows/`.
    pub workflows: Option<PathBuf>,
    /// Retention and size limits of saga state.
    pub engine: SagaConfig,
}
