//! Simulated agents: each command gets a result after a drawn latency, or fails, or (silent)
//! never gets one, so timeouts and retries are exercised.

use std::collections::HashMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::{AgentCommand, AgentResult, AgentType, CompensationCommand, ResultStatus};

/// How the simulated agents behave.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfile {
    /// Latency of an answer, drawn uniformly from this range, in milliseconds.
    pub latency_ms: (i64, i64),
    /// Share of commands answered FAILED, in [0, 1].
    pub failure_rate: f64,
    /// Share of commands never answered, in [0, 1].
    pub silence_rate: f64,
    /// Actions always answered FAILED, whatever the rates: a chaos test names the step (or
    /// compensation) that must fail, so the steps before it still succeed.
    pub fail_actions: Vec<String>,
    /// Actions never answered, whatever the rates, so the step's timeout must fire.
    pub silent_actions: Vec<String>,
    /// Share of voters who pick another option than the one their peers lean to, in [0, 1].
    pub vote_disagreement: f64,
}

impl Default for AgentProfile {
    fn default() -> Self {
        Self {
            latency_ms: (5, 50),
            failure_rate: 0.05,
            silence_rate: 0.0,
            fail_actions: Vec::new(),
            silent_actions: Vec::new(),
            vote_disagreement: 0.0,
        }
    }
}

pub struct SimulatedAgents {
    profile: AgentProfile,
    rng: SmallRng,
}

/// Step outputs the shipped workflows branch on, with the values an agent may report.
const OUTPUTS: &[(&str, &[&str])] = &[
    ("actionable", &["true", "true", "true", "false"]),
    ("approved", &["true", "true", "true", "false"]),
    ("attack", &["true", "false"]),
    ("balanced", &["true", "true", "false"]),
    ("drift", &["none", "moderate", "severe"]),
    ("leak_confirmed", &["true", "true", "false"]),
    ("risk", &["low", "medium", "high", "critical"]),
];
/// Outputs that a workflow checks only for presence.
const OPTIONAL_OUTPUTS: &[&str] = &["isolated_zone", "remediation", "suspect_change"];

impl SimulatedAgents {
    pub fn new(profile: AgentProfile, seed: u64) -> Self {
        Self {
            profile,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    pub(super) fn profile(&self) -> &AgentProfile {
        &self.profile
    }

    pub(super) fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// The result of a command and when it arrives, or None for silence. A supervisor's plan
    /// request is answered with a plan (see `sim::coordination`).
    pub fn answer(&mut self, command: &AgentCommand, now_ms: i64) -> Option<(i64, AgentResult)> {
        let mut answer = self.respond(
            &command.command_id,
            &command.saga_id,
            &command.correlation_id,
            &command.step,
            &command.action,
            command.attempt,
            command.agent_type,
            now_ms,
        );
        if let Some((_, r)) = answer.as_mut() {
            // The agent the service assigned answers; unassigned, the type's first agent does.
            if let Some(agent) = &command.agent_id {
                r.agent_id = agent.clone();
            }
        }
        if let Some((_, r)) = answer.as_mut().filter(|(_, r)| r.error.is_none()) {
            if let Some(plan) = self.plan(command) {
                r.output.insert("plan".into(), plan);
            }
        }
        answer
    }

    /// The result of a compensation and when it arrives, or None for silence. A cancel is
    /// never answered: the saga does not wait for it.
    pub fn compensate(
        &mut self,
        command: &CompensationCommand,
        now_ms: i64,
    ) -> Option<(i64, AgentResult)> {
        if super::coordination::is_cancel(command) {
            return None;
        }
        self.respond(
            &command.command_id,
            &command.saga_id,
            &command.correlation_id,
            &command.step,
            &command.action,
            command.attempt,
            command.agent_type,
            now_ms,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        command_id: &str,
        saga_id: &str,
        correlation_id: &str,
        step: &str,
        action: &str,
        attempt: i32,
        agent_type: AgentType,
        now_ms: i64,
    ) -> Option<(i64, AgentResult)> {
        let p = &self.profile;
        let listed = |list: &[String]| list.iter().any(|a| a == action);
        if listed(&p.silent_actions) || self.rng.random_bool(p.silence_rate.clamp(0.0, 1.0)) {
            return None;
        }
        let failed =
            listed(&p.fail_actions) || self.rng.random_bool(p.failure_rate.clamp(0.0, 1.0));
        let (lo, hi) = (
            p.latency_ms.0.max(0),
            p.latency_ms.1.max(p.latency_ms.0.max(0)),
        );
        let at = now_ms + self.rng.random_range(lo..=hi);
        let mut output = HashMap::new();
        if !failed {
            for (key, values) in OUTPUTS {
                output.insert(
                    key.to_string(),
                    values[self.rng.random_range(0..values.len())].to_string(),
                );
            }
            for key in OPTIONAL_OUTPUTS {
                if self.rng.random_bool(0.5) {
                    output.insert(key.to_string(), "yes".into());
                }
            }
        }
        let result = AgentResult {
            command_id: command_id.into(),
            saga_id: saga_id.into(),
            correlation_id: correlation_id.into(),
            step: step.into(),
            attempt,
            agent_id: format!("sim-{}-1", format!("{agent_type:?}").to_lowercase()),
            agent_type,
            status: if failed {
                ResultStatus::Failed
            } else {
                ResultStatus::Succeeded
            },
            output,
            error: failed.then(|| "simulated failure".to_string()),
            finished_at: at,
            proof: None,
        };
        Some((at, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command for `action`; compensations carry the fields the agents read with less
    /// routing baggage than step commands, and both reach the same `respond`.
    fn command(action: &str) -> CompensationCommand {
        CompensationCommand {
            command_id: format!("saga-1/{action}/1"),
            saga_id: "saga-1".into(),
            correlation_id: "incident-1".into(),
            compensates_command_id: String::new(),
            step: action.into(),
            agent_type: AgentType::Observer,
            action: action.into(),
            attempt: 1,
            reason: String::new(),
            issued_at: 0,
            partition_key: "incident-1".into(),
            proof: None,
        }
    }

    #[test]
    fn listed_actions_fail_or_stay_silent_while_the_others_succeed() {
        let profile = AgentProfile {
            failure_rate: 0.0,
            fail_actions: vec!["remediate".into()],
            silent_actions: vec!["verify".into()],
            ..AgentProfile::default()
        };
        let mut agents = SimulatedAgents::new(profile, 7);
        for _ in 0..50 {
            let (_, ok) = agents.compensate(&command("observe"), 0).unwrap();
            assert_eq!(ok.status, ResultStatus::Succeeded);
            let (_, failed) = agents.compensate(&command("remediate"), 0).unwrap();
            assert_eq!(failed.status, ResultStatus::Failed);
            assert!(failed.error.is_some() && failed.output.is_empty());
            assert!(agents.compensate(&command("verify"), 0).is_none());
        }
    }

    #[test]
    fn the_failure_rate_still_applies_to_unlisted_actions() {
        let profile = AgentProfile {
            failure_rate: 0.5,
            fail_actions: vec!["remediate".into()],
            ..AgentProfile::default()
        };
        let mut agents = SimulatedAgents::new(profile, 7);
        let failed = (0..1_000)
            .filter(|_| {
                let (_, r) = agents.compensate(&command("observe"), 0).unwrap();
                r.status == ResultStatus::Failed
            })
            .count();
        assert!((400..600).contains(&failed), "{failed} of 1000 failed");
    }
}
