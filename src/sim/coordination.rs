//! What simulated agents do for coordination steps: vote on ballots, plan sub-tasks for a
//! supervisor, and ignore cancels. The same `--failure-rate` and `--silence-rate` apply to votes
//! (a failing voter abstains, a silent one never answers), and `--vote-disagreement` makes a
//! voter pick another option than the one its peers lean to, so ties and missed quorums happen.

use rand::Rng;

use crate::model::{AgentCommand, AgentType, AgentVote, CompensationCommand, Coordination};
use crate::saga::kinds::{OPTIONS_ATTRIBUTE, PLAN_ATTRIBUTE};

use super::agents::SimulatedAgents;

/// Whether `command` is a consensus ballot (answered with a vote on `agent.votes`).
pub fn is_ballot(command: &AgentCommand) -> bool {
    command.coordination == Coordination::Consensus
        && command.attributes.contains_key(OPTIONS_ATTRIBUTE)
}

/// Whether `command` is a cancel (never answered: the saga does not wait for it).
pub fn is_cancel(command: &CompensationCommand) -> bool {
    command.action == "cancel"
}

/// Actions a simulated supervisor may plan.
const SUBTASKS: &[(&str, &str)] = &[
    ("OBSERVER", "snapshot-state"),
    ("ANALYST", "check-dependencies"),
    ("SUPERVISOR", "apply-change"),
    ("OBSERVER", "watch-error-rate"),
    ("ANALYST", "confirm-impact"),
];

/// A stable number for a string (FNV-1a), so every voter of one saga leans the same way.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl SimulatedAgents {
    /// The vote on a ballot and when it arrives, or `None` when the voter is silent or fails
    /// (abstains). Voters lean to one option per saga; each disagrees with probability
    /// `vote_disagreement`. The vote id is the ballot's command id, as the saga requires.
    pub fn vote(&mut self, ballot: &AgentCommand, now_ms: i64) -> Option<(i64, AgentVote)> {
        let options: Vec<String> = ballot
            .attributes
            .get(OPTIONS_ATTRIBUTE)?
            .split(',')
            .map(str::to_string)
            .collect();
        let p = self.profile().clone();
        let listed = |list: &[String]| list.contains(&ballot.action);
        let rng = self.rng();
        if listed(&p.silent_actions) || rng.random_bool(p.silence_rate.clamp(0.0, 1.0)) {
            return None;
        }
        if listed(&p.fail_actions) || rng.random_bool(p.failure_rate.clamp(0.0, 1.0)) {
            return None;
        }
        let lean = (stable_hash(&ballot.saga_id) % options.len() as u64) as usize;
        let mut pick = lean;
        if options.len() > 1 && rng.random_bool(p.vote_disagreement.clamp(0.0, 1.0)) {
            pick = (lean + rng.random_range(1..options.len())) % options.len();
        }
        let (lo, hi) = (
            p.latency_ms.0.max(0),
            p.latency_ms.1.max(p.latency_ms.0.max(0)),
        );
        let at = now_ms + rng.random_range(lo..=hi);
        let weight = rng.random_range(0.5..=1.0);
        // One agent per ballot: `v2` of the ballot id names it.
        let seat = ballot.command_id.rsplit('/').nth(1).unwrap_or("v0");
        let agent = format!("sim-{}-{seat}", type_name(ballot.agent_type));
        let vote = AgentVote {
            reason: format!("simulated vote ({} options)", options.len()),
            ..AgentVote::on(ballot, agent, options[pick].clone(), weight, at)
        };
        Some((at, vote))
    }

    /// A supervisor's plan for a plan request: as many sub-tasks as `plan.max_subtasks`
    /// allows (up to five), as the `plan` output (`AGENT_TYPE:action;...`); `None` for any
    /// other command.
    pub fn plan(&self, command: &AgentCommand) -> Option<String> {
        let max: usize = command.attributes.get(PLAN_ATTRIBUTE)?.parse().ok()?;
        let n = max.clamp(1, SUBTASKS.len());
        let tasks: Vec<String> = SUBTASKS[..n]
            .iter()
            .map(|(t, a)| format!("{t}:{a}"))
            .collect();
        Some(tasks.join(";"))
    }
}

fn type_name(t: AgentType) -> &'static str {
    match t {
        AgentType::Observer => "observer",
        AgentType::Analyst => "analyst",
        AgentType::Supervisor => "supervisor",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::Layer;
    use crate::sim::AgentProfile;

    fn ballot(saga: &str, seat: usize) -> AgentCommand {
        AgentCommand {
            command_id: format!("{saga}/decide/v{seat}/1"),
            saga_id: saga.into(),
            correlation_id: "c".into(),
            anomaly_ids: vec![],
            workflow: "w".into(),
            step: "decide".into(),
            agent_type: AgentType::Analyst,
            action: "vote".into(),
            layer: Layer::Operational,
            coordination: Coordination::Consensus,
            pattern_id: None,
            urgency: 0.5,
            complexity: 0.5,
            attempt: 1,
            deadline: 0,
            explanation: String::new(),
            attributes: HashMap::from([(OPTIONS_ATTRIBUTE.to_string(), "a,b".to_string())]),
            issued_at: 0,
            partition_key: "c".into(),
            agent_id: None,
            proof: None,
        }
    }

    #[test]
    fn voters_agree_unless_told_to_disagree_and_the_rates_apply_to_votes() {
        let calm = AgentProfile {
            failure_rate: 0.0,
            ..AgentProfile::default()
        };
        let mut agents = SimulatedAgents::new(calm, 3);
        for s in 0..20 {
            let saga = format!("saga-{s}");
            let choices: Vec<String> = (0..3)
                .map(|i| agents.vote(&ballot(&saga, i), 0).unwrap().1.choice)
                .collect();
            assert!(choices.iter().all(|c| *c == choices[0]), "{choices:?}");
            let v = agents.vote(&ballot(&saga, 2), 0).unwrap().1;
            assert_eq!(
                (v.vote_id.as_str(), v.agent_id.as_str()),
                (ballot(&saga, 2).command_id.as_str(), "sim-analyst-v2")
            );
        }
        let split = AgentProfile {
            failure_rate: 0.0,
            vote_disagreement: 1.0,
            ..AgentProfile::default()
        };
        let mut agents = SimulatedAgents::new(split, 3);
        let (a, b) = (
            agents.vote(&ballot("x", 0), 0).unwrap().1,
            agents.vote(&ballot("x", 1), 0).unwrap().1,
        );
        assert_eq!(
            a.choice, b.choice,
            "with two options, disagreeing always lands on the other"
        );
        let mut calm = SimulatedAgents::new(
            AgentProfile {
                failure_rate: 0.0,
                ..AgentProfile::default()
            },
            3,
        );
        assert_ne!(a.choice, calm.vote(&ballot("x", 0), 0).unwrap().1.choice);
        let silent = AgentProfile {
            silence_rate: 0.5,
            failure_rate: 0.0,
            ..AgentProfile::default()
        };
        let mut agents = SimulatedAgents::new(silent, 3);
        let answered = (0..1000)
            .filter(|i| agents.vote(&ballot(&format!("s{i}"), 0), 0).is_some())
            .count();
        assert!((400..600).contains(&answered), "{answered}");
    }

    #[test]
    fn plans_fill_the_requested_bound() {
        let agents = SimulatedAgents::new(AgentProfile::default(), 5);
        let mut c = ballot("s", 0);
        assert_eq!(agents.plan(&c), None);
        c.attributes = HashMap::from([(PLAN_ATTRIBUTE.to_string(), "3".to_string())]);
        let plan = agents.plan(&c).unwrap();
        assert_eq!(
            plan,
            "OBSERVER:snapshot-state;ANALYST:check-dependencies;SUPERVISOR:apply-change"
        );
    }
}

/// The coordination workflows run to their end against agents that fail and go silent.
#[cfg(test)]
mod completion {
    use std::sync::Arc;

    use crate::model::{Coordination, Layer};
    use crate::saga::{SagaConfig, SagaEngine, SagaStart, Workflows};
    use crate::sim::{run_sagas, AgentProfile, SimulatedAgents};

    fn start(i: usize, workflow: &str, layer: Layer) -> (i64, SagaStart) {
        let at = 1_700_000_000_000 + i as i64 * 50;
        let start = SagaStart {
            saga_id: format!("incident-{i}@{at}"),
            correlation_id: format!("incident-{i}"),
            workflow: workflow.into(),
            anomaly_ids: vec![format!("an-{i}")],
            pattern_id: None,
            layer,
            coordination: Coordination::Pipeline,
            urgency: 0.5,
            complexity: 0.5,
            explanation: String::new(),
            attributes: Default::default(),
            agent_overrides: Default::default(),
        };
        (at, start)
    }

    #[test]
    fn ten_thousand_coordination_sagas_all_end_with_5_percent_failing_and_5_percent_silent() {
        let workflows = [
            "cascade-containment",
            "partition-recovery",
            "change-rollback",
            "contention-relief",
        ];
        let engine = SagaEngine::new(
            Arc::new(Workflows::builtin().unwrap()),
            SagaConfig::default(),
        );
        let layers = [Layer::Operational, Layer::Tactical, Layer::Strategic];
        let triggers: Vec<_> = (0..10_000)
            .map(|i| start(i, workflows[i % 4], layers[i % 3]))
            .collect();
        let profile = AgentProfile {
            failure_rate: 0.05,
            silence_rate: 0.05,
            vote_disagreement: 0.2,
            ..AgentProfile::default()
        };
        let stats = run_sagas(&engine, triggers, &mut SimulatedAgents::new(profile, 42));
        let ended = stats.sagas_completed + stats.sagas_compensated + stats.sagas_failed;
        assert_eq!(stats.sagas_started, 10_000);
        assert_eq!((stats.sagas_unfinished, ended), (0, 10_000), "{stats:?}");
        // Ending FAILED means a compensation failed for good: retried, reported, escalated.
        assert!(stats.sagas_failed < 100, "{stats:?}");
        // Every kind ran: decisions (some tied or short of quorum), branches, cancels after
        // quorum(2) joins, and escalations.
        assert!(stats.consensus_decisions > 2_000, "{stats:?}");
        assert!(
            stats.decisions_agreed < stats.consensus_decisions,
            "{stats:?}"
        );
        assert!(
            stats.fan_out_branches > 7_500 && stats.cancels > 1_000,
            "{stats:?}"
        );
        assert!(stats.escalations > 0 && stats.votes > 0, "{stats:?}");
    }
}

/// `aura produce`'s default mix, routed by the real anomaly chain, reaches the coordination
/// workflows: at least one incident in twenty gets a consensus, and some a fan-out.
#[cfg(test)]
mod mix {
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::config::Config;
    use crate::generator::Generator;
    use crate::model::SagaEventKind;
    use crate::processor::{Event, Output};
    use crate::saga::kinds::StepKind;
    use crate::saga::Workflows;
    use crate::semantic::{Engine, PatternLibrary, SemanticConfig};
    use crate::telemetry::Metrics;

    /// Sagas started per step kind their workflow holds, out of how many started.
    fn started_by_kind(sources: usize, events: usize) -> (HashMap<&'static str, usize>, usize) {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let metrics = Metrics::new();
        let make =
            crate::app::incident_tasks(&Config::default(), &metrics, Arc::default(), engine, 1)
                .unwrap();
        let mut task = make(0);
        let workflows = Workflows::builtin().unwrap();
        // `aura produce` with no flags: scenario mixed, seed 1, noise 0.3.
        let mut generator = Generator::for_scenario("mixed", 1, 0.3, sources, 0.0).unwrap();
        let (mut by_kind, mut started) = (HashMap::new(), 0);
        let mut out = Vec::new();
        let now = 1_800_000_000_000;
        for i in 0..events {
            let at = now + i as i64;
            task.process(Event::Anomaly(generator.anomaly(at)), at, &mut out)
                .unwrap();
            for o in out.drain(..) {
                let Output::SagaEvent(e) = o else { continue };
                if e.kind != SagaEventKind::Started {
                    continue;
                }
                started += 1;
                let wf = workflows.get(&e.workflow).unwrap();
                for kind in [StepKind::Consensus, StepKind::FanOut, StepKind::Supervisor] {
                    if wf.steps.iter().any(|s| s.kind() == kind) {
                        *by_kind.entry(kind.name()).or_insert(0) += 1;
                    }
                }
            }
        }
        (by_kind, started)
    }

    #[test]
    fn the_default_produce_mix_sends_one_incident_in_twenty_through_a_consensus() {
        for (sources, events) in [(50, 1_000), (1 << 40, 2_000)] {
            let (by_kind, started) = started_by_kind(sources, events);
            let share = |k: &str| by_kind.get(k).copied().unwrap_or(0) as f64 / started as f64;
            assert!(started >= 40, "{sources} sources: {started} sagas");
            assert!(
                share("consensus") >= 0.05,
                "{sources} sources: {by_kind:?} of {started}"
            );
            assert!(
                share("fan_out") > 0.0,
                "{sources} sources: {by_kind:?} of {started}"
            );
            assert!(
                share("supervisor") > 0.0,
                "{sources} sources: {by_kind:?} of {started}"
            );
        }
    }
}
