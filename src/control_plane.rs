//! The live control plane: the agent registry and the feature flags, loaded on every instance
//! from their compacted topics, kept in step with the semantic engine's router.
//!
//! Each table tells the engine of every change as it is applied, so a registration, a
//! tombstone or a flag change reaches routing within the table loader's fetch latency
//! (milliseconds), and invalidates the cached routes. An agent whose heartbeat
//! (`updated_at`) is older than `heartbeat_timeout_ms` is dropped as a tombstone would drop
//! it, by a sweep every second.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tracing::info;

use crate::config::Problem;
use crate::model::{AgentRegistration, AgentStatus, AgentType, FeatureFlag};
use crate::runtime::kafka::Tables;
use crate::semantic::Engine;
use crate::table::Table;
use crate::telemetry::Metrics;

/// The `[registry]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// An agent whose last registration (`updated_at`) is older than this is no longer live.
    /// Agents re-register (heartbeat) well within it; `aura agents` does every 5 s.
    pub heartbeat_timeout_ms: i64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            heartbeat_timeout_ms: 30_000,
        }
    }
}

impl RegistryConfig {
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        if self.heartbeat_timeout_ms <= 0 {
            problems.push(Problem::new(
                "registry.heartbeat_timeout_ms",
                self.heartbeat_timeout_ms,
                "must be > 0",
            ));
        }
    }
}

/// The instance's tables, with the registry and flags wired to `engine`.
pub fn tables(engine: &Arc<Engine>, metrics: &Metrics) -> Tables {
    let registry = {
        let (engine, metrics) = (engine.clone(), metrics.clone());
        Table::with_listener(Box::new(
            move |agent_id: &str, reg: Option<&AgentRegistration>| {
                match reg {
                    Some(reg) => engine.on_registration(reg),
                    None => engine.on_deregistration(agent_id),
                }
                metrics
                    .route_invalidations
                    .with_label_values(&["registry"])
                    .inc();
                publish_census(&engine, &metrics);
            },
        ))
    };
    let flags = {
        let (engine, metrics) = (engine.clone(), metrics.clone());
        Table::with_listener(Box::new(move |name: &str, flag: Option<&FeatureFlag>| {
            match flag {
                Some(flag) => engine.on_flag(flag),
                None => engine.remove_flag(name),
            }
            info!(
                flag = name,
                enabled = flag.map(|f| f.enabled),
                rollout_percent = flag.map(|f| f.rollout_percent),
                "feature flag changed"
            );
            metrics
                .route_invalidations
                .with_label_values(&["flags"])
                .inc();
        }))
    };
    Tables {
        contexts: Arc::default(),
        registry: Arc::new(registry),
        flags: Arc::new(flags),
    }
}

/// Drops agents with an expired heartbeat every second until `shutdown`.
pub async fn sweep_heartbeats(
    engine: Arc<Engine>,
    metrics: Metrics,
    config: RegistryConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => return,
        }
        let expired =
            engine.expire_registrations(crate::clock::now_ms(), config.heartbeat_timeout_ms);
        if !expired.is_empty() {
            info!(agents = ?expired, "agent heartbeats expired; removed from the registry");
            metrics
                .route_invalidations
                .with_label_values(&["expiry"])
                .inc_by(expired.len() as u64);
        }
        publish_census(&engine, &metrics);
    }
}

/// Sets `aura_registry_agents{agent_type, status}` from the engine's registry.
fn publish_census(engine: &Engine, metrics: &Metrics) {
    let gauge = &metrics.registry_agents;
    for t in [
        AgentType::Observer,
        AgentType::Analyst,
        AgentType::Supervisor,
    ] {
        for s in [
            AgentStatus::Available,
            AgentStatus::Busy,
            AgentStatus::Draining,
            AgentStatus::Offline,
        ] {
            gauge.with_label_values(&[&label(t), &label(s)]).set(0);
        }
    }
    for (t, s, n) in engine.registry_census() {
        gauge.with_label_values(&[&label(t), &label(s)]).set(n);
    }
}

fn label(v: impl std::fmt::Debug) -> String {
    format!("{v:?}").to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::{PatternLibrary, SemanticConfig};

    fn agent(id: &str, updated_at: i64) -> AgentRegistration {
        AgentRegistration {
            agent_id: id.into(),
            agent_type: AgentType::Analyst,
            capabilities: vec![],
            capacity: 4,
            status: AgentStatus::Available,
            updated_at,
        }
    }

    #[test]
    fn registrations_and_tombstones_reach_routing_and_the_gauge() {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let metrics = Metrics::new();
        let tables = tables(&engine, &metrics);
        tables.registry.apply("a-1".into(), Some(agent("a-1", 0)));
        assert_eq!(
            engine.live_agents(AgentType::Analyst),
            vec![("a-1".to_string(), 4)]
        );
        let gauge = || {
            metrics
                .registry_agents
                .with_label_values(&["ANALYST", "AVAILABLE"])
                .get()
        };
        assert_eq!(gauge(), 1);
        tables.registry.apply("a-1".into(), None);
        assert!(engine.live_agents(AgentType::Analyst).is_empty());
        assert_eq!(gauge(), 0);
        let invalidations = metrics
            .route_invalidations
            .with_label_values(&["registry"])
            .get();
        assert_eq!(invalidations, 2);
    }

    #[test]
    fn an_agent_whose_heartbeat_is_older_than_the_timeout_is_no_longer_live() {
        let engine = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
        engine.on_registration(&agent("stale", 1_000));
        engine.on_registration(&agent("fresh", 30_000));
        let expired = engine.expire_registrations(31_001, 30_000);
        assert_eq!(expired, vec!["stale".to_string()]);
        assert_eq!(
            engine.live_agents(AgentType::Analyst),
            vec![("fresh".to_string(), 4)]
        );
    }
}
