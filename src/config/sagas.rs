//! The `[sagas]` table: durable workflows driven by agent results.

use std::path::PathBuf;

use serde::Deserialize;

use crate::saga::SagaConfig;

/// Whether and how incidents run as sagas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SagasConfig {
    /// When true (the default), each routed incident starts (or joins) a saga keyed by saga id:
    /// commands come from the saga's steps, `agent.results` moves it on, and its state is kept in
    /// a changelogged store. When false, the service is stateless: each anomaly gives one
    /// command to the route's first agent, and nothing follows it.
    pub enabled: bool,
    /// A folder of workflow files; without it, the built-in `topologies/workflows/`.
    pub workflows: Option<PathBuf>,
    /// Retention and size limits of saga state.
    pub engine: SagaConfig,
}

impl Default for SagasConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            workflows: None,
            engine: SagaConfig::default(),
        }
    }
}
