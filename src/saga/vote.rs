//! Consensus: ballots out, votes in, a decision once it is sure or at the deadline.
//!
//! Each voter gets a ballot, a command whose id (`{saga}/{step}/v{i}/{round}`) the agent sends
//! back as its vote's `vote_id`. That id is what makes a vote count: a vote naming no ballot of
//! the running round was not asked for; a second vote on a ballot, or a second ballot answered
//! by an agent already counted, is a duplicate; a vote after the decision is late. Each is
//! ignored (and counted by the runtime), so a vote is never counted twice.
//!
//! The decision comes as soon as quorum is reached and no pending ballot could change the
//! winner, or when every ballot is in, or at the deadline (the step's `timeout_ms`). It is a
//! `ConsensusDecision` with the id `{saga}/{step}/decision/{round}`: AGREED takes the edge whose
//! condition holds on `decision`; TIED and NO_QUORUM escalate one layer up and go to
//! `on_escalate`, or fail the step.

use std::collections::{BTreeMap, HashMap};

use crate::model::{
    AgentType, AgentVote, ConsensusDecision, ConsensusOutcome, Coordination, SagaEventKind,
};

use super::config::{StepSpec, WorkflowSpec};
use super::effects::{Ignored, SagaOutput};
use super::kinds::{ConsensusSpec, Weighting, OPTIONS_ATTRIBUTE};
use super::state::{
    decision_id, id_of, parse_command_id, Branch, BranchState, CommandRef, Done, Part, Run,
    SagaState, SagaStatus, TimerKind, Vote,
};
use super::transitions::Tx;

/// A voter's layer weight: observers 1, analysts 2, supervisors 3.
fn layer_weight(t: AgentType) -> f64 {
    match t {
        AgentType::Observer => 1.0,
        AgentType::Analyst => 2.0,
        AgentType::Supervisor => 3.0,
    }
}

/// The weight ballot `i` counts with: `claimed` is what the vote says (`None` for the most it
/// could say, to bound what pending ballots can still add).
fn weight(spec: &ConsensusSpec, b: &Branch, i: usize, claimed: Option<f64>) -> f64 {
    match spec.weights {
        Weighting::Equal => 1.0,
        Weighting::Declared => spec.voters.get(i).map_or(1.0, |v| v.weight),
        Weighting::Layer => layer_weight(b.agent_type),
        Weighting::Confidence => {
            let w = claimed.unwrap_or(spec.max_weight);
            if w.is_finite() {
                w.clamp(0.0, spec.max_weight)
            } else {
                0.0
            }
        }
    }
}

/// The weight per option of the votes counted, in option order.
pub fn tally(run: &Run) -> BTreeMap<String, f64> {
    let mut t = BTreeMap::new();
    for v in run.branches.iter().filter_map(|b| b.vote.as_ref()) {
        *t.entry(v.choice.clone()).or_insert(0.0) += v.weight;
    }
    t
}

/// Checks a vote against the saga: `Ok(ballot)` when it is to be counted.
pub fn classify_vote(s: &SagaState, wf: &WorkflowSpec, v: &AgentVote) -> Result<usize, Ignored> {
    if v.saga_id != s.saga_id {
        return Err(Ignored::Unknown);
    }
    let c = parse_command_id(&s.saga_id, &v.vote_id)
        .filter(|c| c.part == Part::Ballot && c.step == v.step)
        .ok_or(Ignored::NotAsked)?;
    let spec = wf
        .step(c.step)
        .and_then(|st| st.consensus.as_ref())
        .ok_or(Ignored::NotAsked)?;
    let i = c.branch.map_or(usize::MAX, usize::from);
    let run = s
        .current
        .as_ref()
        .filter(|r| r.step == c.step && s.status == SagaStatus::Running && r.attempt == c.attempt);
    let Some(run) = run else {
        // A ballot of a round already decided (or of a finished saga) is late; any other was
        // never sent.
        let decided = s
            .done
            .iter()
            .any(|d| d.step == c.step && d.branch.is_none())
            || s.failure.as_ref().is_some_and(|f| f.step == c.step)
            || s.status != SagaStatus::Running;
        return Err(if decided && c.attempt == 1 {
            Ignored::Late
        } else {
            Ignored::NotAsked
        });
    };
    let b = run.branches.get(i).ok_or(Ignored::NotAsked)?;
    if b.agent_type != v.agent_type {
        return Err(Ignored::Rejected {
            expected: b.agent_type,
            got: v.agent_type,
        });
    }
    if b.state == BranchState::Voted {
        return Err(Ignored::Duplicate);
    }
    if run
        .branches
        .iter()
        .any(|o| o.vote.as_ref().is_some_and(|x| x.agent_id == v.agent_id))
    {
        return Err(Ignored::Duplicate);
    }
    if !spec.options.contains(&v.choice) {
        return Err(Ignored::Invalid);
    }
    Ok(i)
}

impl Tx<'_> {
    /// Sends a ballot to every voter and arms the deadline.
    pub fn start_vote(&mut self, s: &mut SagaState, step: &StepSpec) {
        let Some(spec) = &step.consensus else { return };
        let agent = Self::agent_for(s, step);
        let types: Vec<AgentType> = match spec.count {
            Some(n) => vec![agent; n],
            None => spec.voters.iter().map(|v| v.agent_type).collect(),
        };
        let round = 1;
        let mut run = Run::new(&step.name, round);
        run.branches = types
            .into_iter()
            .map(|agent_type| Branch {
                agent_type,
                action: None,
                attempt: round,
                state: BranchState::Waiting,
                vote: None,
            })
            .collect();
        let n = run.branches.len();
        s.current = Some(run);
        let deadline = self.now.saturating_add(step.timeout_ms);
        s.set_timer(TimerKind::StepTimeout, deadline);
        let options = spec.options.join(",");
        for i in 0..n {
            let agent_type = s
                .current
                .as_ref()
                .map_or(agent, |r| r.branches[i].agent_type);
            let id = id_of(
                &s.saga_id,
                &CommandRef {
                    step: &step.name,
                    attempt: round,
                    branch: Some(i as u8),
                    part: Part::Ballot,
                },
            );
            let mut e = self.step_event(s, SagaEventKind::StepStarted, &step.name, round);
            e.command_id = Some(id.clone());
            self.out.push(SagaOutput::Event(e));
            let mut c = self.command(
                s,
                &step.name,
                id,
                agent_type,
                &step.action,
                Coordination::Consensus,
                round,
                deadline,
            );
            c.attributes
                .insert(OPTIONS_ATTRIBUTE.to_string(), options.clone());
            self.out.push(SagaOutput::Command(c));
        }
    }

    /// Counts a vote already classified as ballot `i`'s, then decides if the outcome is sure.
    pub fn count_vote(&mut self, s: &mut SagaState, step: &StepSpec, i: usize, v: &AgentVote) {
        let Some(spec) = &step.consensus else { return };
        let Some(run) = s.current.as_mut() else {
            return;
        };
        let Some(b) = run.branches.get(i).cloned() else {
            return;
        };
        let w = weight(spec, &b, i, Some(v.weight));
        run.branches[i].state = BranchState::Voted;
        run.branches[i].vote = Some(Vote {
            agent_id: v.agent_id.clone(),
            choice: v.choice.clone(),
            weight: w,
        });
        let run = &*run;
        let votes = run.branches.iter().filter(|b| b.vote.is_some()).count();
        if votes < spec.quorum {
            return;
        }
        let pending: f64 = run
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.state == BranchState::Waiting)
            .map(|(j, b)| weight(spec, b, j, None))
            .sum();
        let t = tally(run);
        let mut weights: Vec<f64> = t.values().copied().collect();
        weights.sort_by(|a, b| b.total_cmp(a));
        let lead = weights.first().copied().unwrap_or(0.0) - weights.get(1).copied().unwrap_or(0.0);
        if pending == 0.0 || lead > pending {
            self.decide(s, step, false);
        }
    }

    /// The voting deadline passed.
    pub fn vote_deadline(&mut self, s: &mut SagaState, step: &StepSpec) {
        self.decide(s, step, true);
    }

    /// Writes the decision and leaves the step by it.
    fn decide(&mut self, s: &mut SagaState, step: &StepSpec, at_deadline: bool) {
        let Some(spec) = &step.consensus else { return };
        let Some(run) = s.current.as_ref() else {
            return;
        };
        let round = run.attempt;
        let t = tally(run);
        let voters: Vec<String> = run
            .branches
            .iter()
            .filter_map(|b| b.vote.as_ref().map(|v| v.agent_id.clone()))
            .collect();
        let best = t.values().copied().fold(f64::NEG_INFINITY, f64::max);
        let leaders: Vec<&String> = t
            .iter()
            .filter(|(_, w)| **w == best)
            .map(|(c, _)| c)
            .collect();
        let (outcome, choice) = if voters.len() < spec.quorum {
            (ConsensusOutcome::NoQuorum, None)
        } else if leaders.len() == 1 {
            (ConsensusOutcome::Agreed, Some(leaders[0].clone()))
        } else {
            (ConsensusOutcome::Tied, None)
        };
        self.out.push(SagaOutput::Decision(ConsensusDecision {
            decision_id: decision_id(&s.saga_id, &step.name, round),
            saga_id: s.saga_id.clone(),
            correlation_id: s.correlation_id.clone(),
            step: step.name.clone(),
            outcome,
            choice: choice.clone(),
            tally: t.clone().into_iter().collect::<HashMap<_, _>>(),
            votes_cast: voters.len() as i32,
            quorum: spec.quorum as i32,
            voters: voters.clone(),
            at: self.now,
        }));
        s.timer = None;
        let summary = t
            .iter()
            .map(|(c, w)| format!("{c} {w}"))
            .collect::<Vec<_>>()
            .join(", ");
        if let Some(choice) = choice {
            let mut e = self.step_event(s, SagaEventKind::StepSucceeded, &step.name, round);
            e.reason = Some(format!("AGREED on {choice} ({summary})"));
            self.out.push(SagaOutput::Event(e));
            s.done.push(Done {
                decision: Some(choice.clone()),
                ..Done::step(&step.name, round)
            });
            let output = HashMap::from([("decision".to_string(), choice)]);
            return self.advance(s, step, &output);
        }
        let why = match outcome {
            ConsensusOutcome::Tied => format!("consensus {} tied ({summary})", step.name),
            _ => format!(
                "consensus {}: {} of {} votes needed{}",
                step.name,
                voters.len(),
                spec.quorum,
                if at_deadline { " by the deadline" } else { "" }
            ),
        };
        match spec.on_escalate.as_deref().and_then(|n| self.step(n)) {
            Some(next) => {
                let mut e = self.step_event(s, SagaEventKind::StepFailed, &step.name, round);
                e.reason = Some(format!("{why}; escalated to step {}", next.name));
                self.out.push(SagaOutput::Event(e));
                s.done.push(Done::step(&step.name, round));
                s.current = None;
                // An escalate step reports the escalation itself, with this reason.
                if next.escalate.is_some() {
                    self.start_escalation(s, next, Some(why));
                } else {
                    self.escalate(s, Some(step.name.clone()), why);
                    self.enter_step(s, next);
                }
            }
            None => {
                self.escalate(s, Some(step.name.clone()), why.clone());
                let mut e = self.step_event(s, SagaEventKind::StepFailed, &step.name, round);
                e.reason = Some(why.clone());
                self.out.push(SagaOutput::Event(e));
                self.give_up(s, step, round, at_deadline, why);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::kinds::VoterSpec;

    #[test]
    fn votes_weigh_as_the_workflow_says() {
        let voter = |agent_type, weight| VoterSpec { agent_type, weight };
        let mut spec = ConsensusSpec {
            options: vec!["a".into(), "b".into()],
            voters: vec![
                voter(AgentType::Observer, 0.5),
                voter(AgentType::Supervisor, 4.0),
            ],
            count: None,
            quorum: 1,
            weights: Weighting::Equal,
            max_weight: 2.0,
            on_escalate: None,
        };
        let ballot = |agent_type| Branch {
            agent_type,
            action: None,
            attempt: 1,
            state: BranchState::Waiting,
            vote: None,
        };
        let (o, s) = (ballot(AgentType::Observer), ballot(AgentType::Supervisor));
        assert_eq!(weight(&spec, &s, 1, Some(9.0)), 1.0);
        spec.weights = Weighting::Declared;
        assert_eq!(
            (weight(&spec, &o, 0, None), weight(&spec, &s, 1, None)),
            (0.5, 4.0)
        );
        spec.weights = Weighting::Layer;
        assert_eq!(
            (weight(&spec, &o, 0, None), weight(&spec, &s, 1, None)),
            (1.0, 3.0)
        );
        spec.weights = Weighting::Confidence;
        assert_eq!(weight(&spec, &o, 0, Some(0.7)), 0.7);
        assert_eq!(weight(&spec, &o, 0, Some(9.0)), 2.0, "capped at max_weight");
        assert_eq!(weight(&spec, &o, 0, Some(f64::NAN)), 0.0);
        assert_eq!(
            weight(&spec, &o, 0, None),
            2.0,
            "the most a pending ballot can add"
        );
    }
}
