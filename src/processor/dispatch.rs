//! Which agent gets a command: among the live agents of the command's type in the registry
//! (`agent.registry`), the one with the least outstanding work for its capacity.
//!
//! Outstanding work is counted by this instance: commands it assigned minus results it has
//! seen from that agent. Instances do not share counts, and a restart starts from zero, so the
//! balance is per instance and approximate, like a client-side load balancer's; the registry's
//! `capacity` keeps a small agent from getting a big one's share. With no live agent of the
//! type, the command goes out unassigned (any agent of the type may take it) and its
//! explanation says so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::model::AgentCommand;
use crate::semantic::Engine;

pub struct Dispatcher {
    engine: Arc<Engine>,
    outstanding: Mutex<HashMap<String, i64>>,
}

impl Dispatcher {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            outstanding: Mutex::default(),
        }
    }

    /// Picks the command's agent and says why in its explanation.
    pub fn assign(&self, command: &mut AgentCommand) {
        let live = self.engine.live_agents(command.agent_type);
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|e| e.into_inner());
        let load = |id: &str, capacity: i32| {
            // Compared as outstanding / capacity without floats: scaled by a common factor.
            outstanding.get(id).copied().unwrap_or(0) * 1_000_000 / i64::from(capacity.max(1))
        };
        let Some((id, capacity)) = live
            .iter()
            .min_by_key(|(id, capacity)| (load(id, *capacity), id.clone()))
            .cloned()
        else {
            command.agent_id = None;
            command.explanation.push_str(&format!(
                "; no live {:?} agent in the registry: sent unassigned to the type",
                command.agent_type
            ));
            return;
        };
        let n = outstanding.entry(id.clone()).or_insert(0);
        *n += 1;
        command.explanation.push_str(&format!(
            "; agent {id} (least loaded of {} live: {}/{capacity} outstanding)",
            live.len(),
            *n
        ));
        command.agent_id = Some(id);
    }

    /// An answer from `agent_id` came: one command less outstanding.
    pub fn answered(&self, agent_id: &str) {
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = outstanding.get_mut(agent_id) {
            *n = (*n - 1).max(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentRegistration, AgentStatus, AgentType, Coordination, Layer};
    use crate::semantic::{PatternLibrary, SemanticConfig};

    fn register(engine: &Engine, id: &str, capacity: i32) {
        engine.on_registration(&AgentRegistration {
            agent_id: id.into(),
            agent_type: AgentType::Analyst,
            capabilities: vec![],
            capacity,
            status: AgentStatus::Available,
            updated_at: 0,
        });
    }

    fn command() -> AgentCommand {
        AgentCommand {
            command_id: "c".into(),
            saga_id: "k@1".into(),
            correlation_id: "k".into(),
            anomaly_ids: vec![],
            workflow: "triage".into(),
            step: "triage".into(),
            agent_type: AgentType::Analyst,
            action: "analyze".into(),
            layer: Layer::Operational,
            coordination: Coordination::Pipeline,
            pattern_id: None,
            urgency: 0.5,
            complexity: 0.5,
            attempt: 1,
            deadline: 0,
            explanation: String::new(),
            attributes: Default::default(),
            issued_at: 0,
            partition_key: "k".into(),
            agent_id: None,
            proof: None,
        }
    }

    fn engine() -> Arc<Engine> {
        Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ))
    }

    #[test]
    fn commands_spread_by_outstanding_work_for_capacity_and_answers_free_an_agent() {
        let engine = engine();
        register(&engine, "a", 1);
        register(&engine, "b", 3);
        let d = Dispatcher::new(engine);
        let mut picks = Vec::new();
        for _ in 0..8 {
            let mut c = command();
            d.assign(&mut c);
            picks.push(c.agent_id.unwrap());
        }
        let count = |id: &str| picks.iter().filter(|p| *p == id).count();
        assert_eq!((count("a"), count("b")), (2, 6), "{picks:?}");
        for _ in 0..2 {
            d.answered("a");
        }
        let mut c = command();
        d.assign(&mut c);
        assert_eq!(c.agent_id.as_deref(), Some("a"), "a is free again");
        assert!(c.explanation.contains("agent a"), "{}", c.explanation);
    }

    #[test]
    fn with_no_live_agent_of_the_type_the_command_goes_unassigned_and_says_so() {
        let d = Dispatcher::new(engine());
        let mut c = command();
        d.assign(&mut c);
        assert_eq!(c.agent_id, None);
        assert!(
            c.explanation.contains("no live Analyst agent"),
            "{}",
            c.explanation
        );
    }
}
