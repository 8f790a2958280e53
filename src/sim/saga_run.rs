//! Sagas against simulated agents under virtual time, on the engine alone (no log, no codec):
//! every start, result, vote and timer happens at its own simulated instant, so an hour of
//! retries and timeouts runs in milliseconds and the same seed always gives the same run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{AgentResult, AgentVote, ConsensusOutcome, SagaEventKind};
use crate::saga::state::{parse_command_id, Part};
use crate::saga::{Effects, SagaEngine, SagaStart, SagaStore};

use super::coordination::is_ballot;
use super::SimulatedAgents;

/// What happened to the sagas of one run.
#[derive(Debug, Default)]
pub struct SagaRunStats {
    pub sagas_started: u64,
    pub anomalies_joined: u64,
    pub sagas_completed: u64,
    pub sagas_compensated: u64,
    pub sagas_failed: u64,
    pub commands: u64,
    pub compensations: u64,
    pub escalations: u64,
    /// Consensus decisions written, and how many of them were AGREED.
    pub consensus_decisions: u64,
    pub decisions_agreed: u64,
    /// Fan-out (and supervisor) branch commands, and the branches cancelled after a join.
    pub fan_out_branches: u64,
    pub cancels: u64,
    /// Votes cast, and those ignored (duplicate, late, not asked).
    pub votes: u64,
    pub votes_ignored: u64,
    pub results_ignored: u64,
    /// Still running when the run ended (should be none).
    pub sagas_unfinished: u64,
}

enum Arrival {
    Start(Box<SagaStart>),
    Result(Box<AgentResult>),
    Vote(Box<AgentVote>),
}

/// Runs every `(at_ms, start)` trigger to the end of its saga.
pub fn run_sagas(
    engine: &SagaEngine,
    triggers: Vec<(i64, SagaStart)>,
    agents: &mut SimulatedAgents,
) -> SagaRunStats {
    let mut stats = SagaRunStats::default();
    let mut store = SagaStore::new();
    // (time, sequence) orders arrivals; the sequence keeps equal times in arrival order.
    let mut queue: BinaryHeap<Reverse<(i64, u64)>> = BinaryHeap::new();
    let mut arrivals: std::collections::HashMap<u64, Arrival> = Default::default();
    let mut seq = 0u64;
    for (at, start) in triggers {
        queue.push(Reverse((at, seq)));
        arrivals.insert(seq, Arrival::Start(Box::new(start)));
        seq += 1;
    }
    loop {
        let next_arrival = queue.peek().map(|Reverse((at, _))| *at);
        let next_timer = store.timers().next_due();
        let effects: Vec<Effects> = match (next_arrival, next_timer) {
            (None, None) => break,
            (Some(a), Some(t)) if t < a => store
                .fire_due(engine, t)
                .into_iter()
                .map(|(_, fx)| fx)
                .collect(),
            (None, Some(t)) => store
                .fire_due(engine, t)
                .into_iter()
                .map(|(_, fx)| fx)
                .collect(),
            (Some(_), _) => {
                let Reverse((now, id)) = queue.pop().expect("peeked");
                match arrivals.remove(&id).expect("queued") {
                    Arrival::Start(start) => {
                        let is_new = store.get(&start.saga_id).is_none();
                        let fx = store.start_or_join(engine, *start, now);
                        match fx {
                            Ok(fx) => {
                                if is_new {
                                    stats.sagas_started += 1
                                } else {
                                    stats.anomalies_joined += 1
                                }
                                vec![fx]
                            }
                            Err(_) => vec![],
                        }
                    }
                    Arrival::Result(result) => vec![store.on_result(engine, &result, now)],
                    Arrival::Vote(vote) => {
                        stats.votes += 1;
                        let fx = store.on_vote(engine, &vote, now);
                        if fx.ignored.is_some() {
                            stats.votes_ignored += 1;
                        }
                        vec![fx]
                    }
                }
            }
        };
        for fx in effects {
            if fx.ignored.is_some() {
                stats.results_ignored += 1;
            }
            let now = next_arrival
                .into_iter()
                .chain(next_timer)
                .min()
                .unwrap_or_default();
            for command in fx.commands() {
                stats.commands += 1;
                let id = parse_command_id(&command.saga_id, &command.command_id);
                if id.is_some_and(|c| c.branch.is_some() && c.part == Part::Step) {
                    stats.fan_out_branches += 1;
                }
                if is_ballot(command) {
                    if let Some((at, vote)) = agents.vote(command, now) {
                        queue.push(Reverse((at, seq)));
                        arrivals.insert(seq, Arrival::Vote(Box::new(vote)));
                        seq += 1;
                    }
                    continue;
                }
                if let Some((at, result)) = agents.answer(command, now) {
                    queue.push(Reverse((at, seq)));
                    arrivals.insert(seq, Arrival::Result(Box::new(result)));
                    seq += 1;
                }
            }
            for compensation in fx.compensations() {
                stats.compensations += 1;
                if let Some((at, result)) = agents.compensate(compensation, now) {
                    queue.push(Reverse((at, seq)));
                    arrivals.insert(seq, Arrival::Result(Box::new(result)));
                    seq += 1;
                }
            }
            stats.escalations += fx.escalations().count() as u64;
            stats.cancels += fx.cancels().count() as u64;
            for d in fx.decisions() {
                stats.consensus_decisions += 1;
                if d.outcome == ConsensusOutcome::Agreed {
                    stats.decisions_agreed += 1;
                }
            }
            for event in fx.events() {
                match event.kind {
                    SagaEventKind::Completed => stats.sagas_completed += 1,
                    SagaEventKind::Compensated => stats.sagas_compensated += 1,
                    SagaEventKind::Failed => stats.sagas_failed += 1,
                    _ => {}
                }
            }
        }
    }
    stats.sagas_unfinished = store.iter().filter(|s| !s.status.is_terminal()).count() as u64;
    stats
}
