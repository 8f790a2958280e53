//! Votes through the saga processor, as the runtime hands them in: a decision comes out as an
//! output of its own, and a vote that is poison (not asked, no such option, or with agent auth
//! unsigned or replayed) is an error with its reason code, so it becomes a dead letter.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::auth::{sign, AnswerGate, Key, KeyState, Keyring};
use crate::model::{AgentCommand, AgentType, AgentVote, ConsensusOutcome, Coordination, Layer};
use crate::saga::{SagaConfig, SagaEngine, Workflows};
use crate::security::Secret;
use crate::telemetry::Metrics;

use super::{Event, Output, ProcessError, Processor, SagaProcessor};

const T0: i64 = 1_700_000_000_000;

/// Routing's explanation, which the saga keeps phrase-coded and every command carries as is.
const EXPLANATION: &str = "pattern x (confidence 0.90, raw 0.50); complexity 0.39 (entropy 0.77, \
significant 0.39, entities 0.00, tags 0.25); route: workflow vote; coordination Consensus (no rule \
fired: the workflow's default); layer Operational";

/// Two analysts and a supervisor choose, quorum 2; a tie or no quorum fails the step.
const VOTE: &str = r#"
[workflows.vote]
[[workflows.vote.steps]]
name = "decide"
action = "remediate-or-rollback"
timeout_ms = 2000
next = [{ to = "rollback", when = { key = "decision", equals = "rollback" } }]

[workflows.vote.steps.consensus]
options = ["remediate", "rollback"]
voters = [{ agent_type = "ANALYST" }, { agent_type = "ANALYST" }, { agent_type = "SUPERVISOR" }]
quorum = 2

[[workflows.vote.steps]]
name = "rollback"
agent_type = "SUPERVISOR"
action = "roll-back"
timeout_ms = 1000
"#;

fn processor(metrics: &Metrics, gate: Option<AnswerGate>) -> SagaProcessor {
    let wf = Workflows::from_sources([("t.toml".to_string(), VOTE.to_string())]).unwrap();
    let engine = Arc::new(SagaEngine::new(Arc::new(wf), SagaConfig::default()));
    SagaProcessor::new(engine, &metrics.sagas).with_gate(gate)
}

fn keyring() -> Keyring {
    let key = |id: &str, agent_type| Key {
        id: id.into(),
        agent_type,
        state: KeyState::Active,
        secret: Secret::new(format!("{id}-secret-0123456789abcdef0123456789")),
    };
    Keyring::from_keys([
        key("ana-1", AgentType::Analyst),
        key("sup-1", AgentType::Supervisor),
    ])
}

/// Starts saga `s1` and returns its three ballots.
fn ballots(p: &mut SagaProcessor) -> Vec<AgentCommand> {
    let trigger = AgentCommand {
        command_id: "s1/route".into(),
        saga_id: "s1".into(),
        correlation_id: "checkout".into(),
        anomaly_ids: vec!["an-1".into()],
        workflow: "vote".into(),
        step: String::new(),
        agent_type: AgentType::Analyst,
        action: String::new(),
        layer: Layer::Operational,
        coordination: Coordination::Consensus,
        pattern_id: None,
        urgency: 0.5,
        complexity: 0.2,
        attempt: 1,
        deadline: T0 + 60_000,
        explanation: EXPLANATION.into(),
        attributes: Default::default(),
        issued_at: T0,
        partition_key: "checkout".into(),
        agent_id: None,
        proof: None,
    };
    let mut out = Vec::new();
    p.on_incident(trigger, BTreeMap::new(), T0, &mut out)
        .unwrap();
    let ballots: Vec<AgentCommand> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Command(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(ballots.len(), 3, "{ballots:?}");
    ballots
}

fn vote(ballot: &AgentCommand, agent: &str, choice: &str) -> AgentVote {
    AgentVote::on(ballot, agent, choice, 1.0, T0 + 1)
}

/// The reason code a refused vote's dead letter gets, or the outputs of an accepted one.
fn cast(p: &mut SagaProcessor, v: AgentVote) -> Result<Vec<Output>, &'static str> {
    let mut out = Vec::new();
    match p.process(Event::AgentVote(v), T0 + 1, &mut out) {
        Ok(()) => Ok(out),
        Err(ProcessError::Vote(r)) => Err(r.code()),
        Err(ProcessError::Unauthenticated(r)) => Err(r.code()),
        Err(e) => panic!("unexpected refusal {e}"),
    }
}

#[test]
fn votes_reach_a_decision_output_and_poison_votes_are_refused_with_a_code() {
    let m = Metrics::new();
    let mut p = processor(&m, None);
    let b = ballots(&mut p);

    let mut stranger = vote(&b[0], "x-1", "rollback");
    stranger.vote_id = "s1/decide/v7/1".into();
    assert_eq!(cast(&mut p, stranger), Err("vote_not_asked"));
    let mut wrong_type = vote(&b[2], "a-9", "rollback");
    wrong_type.agent_type = AgentType::Observer;
    assert_eq!(cast(&mut p, wrong_type), Err("vote_not_asked"));
    assert_eq!(
        cast(&mut p, vote(&b[0], "a-1", "shrug")),
        Err("vote_invalid_choice")
    );

    let first = cast(&mut p, vote(&b[0], "a-1", "rollback")).unwrap();
    assert!(first.iter().all(|o| !matches!(o, Output::Decision(_))));
    // A repeat is no poison: it changes nothing and is counted.
    assert_eq!(cast(&mut p, vote(&b[0], "a-1", "rollback")), Ok(vec![]));

    let second = cast(&mut p, vote(&b[1], "a-2", "rollback")).unwrap();
    let decisions: Vec<_> = second
        .iter()
        .filter_map(|o| match o {
            Output::Decision(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(decisions.len(), 1, "{second:?}");
    let d = decisions[0];
    assert_eq!(
        (d.outcome, d.choice.as_deref(), d.decision_id.as_str()),
        (
            ConsensusOutcome::Agreed,
            Some("rollback"),
            "s1/decide/decision/1"
        )
    );
    assert_eq!(Output::Decision(d.clone()).key(), "s1");
    // The decided edge runs: the rollback command goes out with the decision.
    let rollback = second.iter().find_map(|o| match o {
        Output::Command(c) if c.step == "rollback" => Some(c),
        _ => None,
    });
    assert_eq!(rollback.map(|c| c.explanation.as_str()), Some(EXPLANATION));
    assert!(b.iter().all(|c| c.explanation == EXPLANATION));
    // The third ballot comes too late to change anything.
    assert_eq!(cast(&mut p, vote(&b[2], "s-1", "remediate")), Ok(vec![]));

    let count = |outcome: &str| m.sagas.inputs.with_label_values(&["vote", outcome]).get();
    assert_eq!(
        (count("applied"), count("duplicate"), count("late")),
        (2, 1, 1)
    );
    assert_eq!(
        (count("not_asked"), count("rejected"), count("invalid")),
        (1, 1, 1)
    );
}

#[test]
fn with_agent_auth_votes_must_be_signed_for_the_saga_and_not_replayed() {
    let keys = keyring();
    let m = Metrics::new();
    let mut p = processor(&m, Some(AnswerGate::new(keys.clone())));
    let b = ballots(&mut p);
    let signed = |v: AgentVote, incarnation: i64| {
        let mut v = v;
        sign(&keys, &mut v, incarnation).unwrap();
        v
    };

    assert_eq!(
        cast(&mut p, vote(&b[0], "a-1", "rollback")),
        Err("auth_unsigned")
    );
    let mut forged = signed(vote(&b[0], "a-1", "rollback"), T0);
    forged.choice = "remediate".into();
    assert_eq!(cast(&mut p, forged), Err("auth_forged"));
    assert_eq!(
        cast(&mut p, signed(vote(&b[0], "a-1", "rollback"), T0 - 5)),
        Err("auth_stale_incarnation")
    );
    let mut elsewhere = signed(vote(&b[0], "a-1", "rollback"), T0);
    elsewhere.saga_id = "s2".into();
    let elsewhere = signed(elsewhere, T0);
    assert_eq!(cast(&mut p, elsewhere), Err("auth_agent_not_asked"));
    // A supervisor's genuine vote on an analyst's ballot: signed, but not asked.
    let mut intruder = vote(&b[0], "s-1", "rollback");
    intruder.agent_type = AgentType::Supervisor;
    assert_eq!(
        cast(&mut p, signed(intruder, T0)),
        Err("auth_agent_not_asked")
    );

    let genuine = signed(vote(&b[0], "a-1", "rollback"), T0);
    cast(&mut p, genuine.clone()).unwrap();
    assert_eq!(cast(&mut p, genuine), Err("auth_replayed"));
    let decided = cast(&mut p, signed(vote(&b[1], "a-2", "rollback"), T0)).unwrap();
    assert!(decided.iter().any(|o| matches!(o, Output::Decision(_))));
    // A genuine vote after the decision is late, not poison: counted, and nothing changes.
    assert_eq!(
        cast(&mut p, signed(vote(&b[2], "s-1", "rollback"), T0)),
        Ok(vec![])
    );
    let late = m.sagas.inputs.with_label_values(&["vote", "late"]).get();
    assert_eq!(late, 1);
}
