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
    /// Canary workflows: a share of the incidents routed to one workflow run another instead,
    /// as a feature flag on `orchestration.flags` says (`[[sagas.canaries]]`).
    pub canaries: Vec<Canary>,
}

/// One canary: incidents routed to `workflow` run `canary` when flag `flag` applies to their
/// correlation key (enabled, and the key inside its rollout share; see `semantic::flags`).
/// With no such flag on the topic, no incident takes the canary; `enabled = false` stops it
/// within a second on every instance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The feature flag's name on `orchestration.flags`.
    pub flag: String,
    /// The workflow routing picks.
    pub workflow: String,
    /// The workflow its canary share runs instead.
    pub canary: String,
}

impl Default for SagasConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            workflows: None,
            engine: SagaConfig::default(),
            canaries: Vec::new(),
        }
    }
}
