//! The simulated agents' registrations on `agent.registry`: each agent announces itself at
//! start-up and again every heartbeat, so the service's registry (and its routing and load
//! balancing) sees it; on a clean stop each leaves with a tombstone.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::codec::Codec;
use crate::model::{AgentRegistration, AgentStatus, AgentType};
use crate::semantic::PatternLibrary;

/// How often each agent re-registers; well within the service's default
/// `registry.heartbeat_timeout_ms` (30 s).
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// `per_type` agents of each type, `sim-<type>-<n>`, each offering every capability the
/// built-in patterns ask of its type.
pub fn simulated(per_type: u32, capacity: i32) -> Vec<AgentRegistration> {
    let library = PatternLibrary::builtin();
    let mut agents = Vec::new();
    for t in [
        AgentType::Observer,
        AgentType::Analyst,
        AgentType::Supervisor,
    ] {
        let mut capabilities: Vec<String> = library
            .patterns
            .iter()
            .flat_map(|p| &p.steps)
            .filter(|s| s.agent_type == t)
            .flat_map(|s| s.capabilities.clone())
            .collect();
        capabilities.sort();
        capabilities.dedup();
        for n in 1..=per_type {
            agents.push(AgentRegistration {
                agent_id: agent_id(t, n),
                agent_type: t,
                capabilities: capabilities.clone(),
                capacity,
                status: AgentStatus::Available,
                updated_at: 0,
            });
        }
    }
    agents
}

/// The id of simulated agent `n` of type `t`.
pub fn agent_id(t: AgentType, n: u32) -> String {
    format!("sim-{}-{n}", format!("{t:?}").to_lowercase())
}

/// Registers `agents` now and every [`HEARTBEAT`] until `shutdown`, then sends a tombstone
/// for each.
pub async fn announce(
    producer: FutureProducer,
    codec: Codec,
    topic: String,
    agents: Vec<AgentRegistration>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => break,
        }
        let now = crate::clock::now_ms();
        for agent in &agents {
            let reg = AgentRegistration {
                updated_at: now,
                ..agent.clone()
            };
            let value = match codec.encode(&topic, &reg) {
                Ok(v) => v,
                Err(error) => {
                    warn!(%error, "registration not encoded");
                    continue;
                }
            };
            let record = FutureRecord::to(&topic).key(&reg.agent_id).payload(&value);
            if let Err((error, _)) = producer.send(record, Duration::from_secs(5)).await {
                warn!(%error, agent = %reg.agent_id, "registration not sent; retried at the next heartbeat");
            }
        }
    }
    for agent in &agents {
        let record = FutureRecord::<String, [u8]>::to(&topic).key(&agent.agent_id);
        let _ = producer.send(record, Duration::from_secs(5)).await;
    }
    info!(agents = agents.len(), "agents deregistered");
}
