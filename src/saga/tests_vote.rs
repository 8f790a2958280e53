//! Consensus and escalation steps, end to end on the engine with an injected clock.

use std::sync::Arc;

use crate::model::{
    AgentCommand, AgentType, AgentVote, ConsensusOutcome, Coordination, Layer, ResultStatus,
};

use super::tests::{ok, only_command, result, start_req, T0};
use super::*;

/// decide: two analysts and a supervisor vote remediate or rollback (quorum 2, 2 s); a tie or
/// a missing quorum goes to `approve`, an escalation whose strategic layer needs an approval
/// that times out as rejected.
const VOTE: &str = r#"
[workflows.vote]
[[workflows.vote.steps]]
name = "decide"
action = "remediate-or-rollback"
timeout_ms = 2000
next = [
  { to = "remediate", when = { key = "decision", equals = "remediate" } },
  { to = "rollback", when = { key = "decision", equals = "rollback" } },
]

[workflows.vote.steps.consensus]
options = ["remediate", "rollback"]
voters = [{ agent_type = "ANALYST" }, { agent_type = "ANALYST" }, { agent_type = "SUPERVISOR" }]
quorum = 2
on_escalate = "approve"

[[workflows.vote.steps]]
name = "remediate"
agent_type = "SUPERVISOR"
action = "apply-remediation"
timeout_ms = 1000

[[workflows.vote.steps]]
name = "rollback"
agent_type = "SUPERVISOR"
action = "roll-back"
timeout_ms = 1000

[[workflows.vote.steps]]
name = "approve"
next = [
  { to = "remediate", when = { key = "approval", equals = "approved" } },
  { to = "stand-down", when = { key = "approval", equals = "rejected" } },
]

[workflows.vote.steps.escalate]
tactical = { agent_type = "ANALYST", action = "review-incident", timeout_ms = 1000 }
strategic = { agent_type = "SUPERVISOR", action = "approve-remediation", timeout_ms = 3000, approval = true, on_timeout = "rejected" }

[[workflows.vote.steps]]
name = "stand-down"
agent_type = "OBSERVER"
action = "record-stand-down"
timeout_ms = 1000
"#;

fn engine(text: &str) -> SagaEngine {
    let wf = Workflows::from_sources([("t.toml".to_string(), text.to_string())])
        .unwrap_or_else(|e| panic!("{e}"));
    SagaEngine::new(Arc::new(wf), SagaConfig::default())
}

/// A saga at `layer` with its three ballots out.
fn started(e: &SagaEngine, layer: Layer) -> (SagaState, Vec<AgentCommand>) {
    let mut req = start_req("s1", "an-1");
    req.workflow = "vote".into();
    req.layer = layer;
    let (s, fx) = e.start(req, T0).unwrap();
    (s, fx.commands().cloned().collect())
}

fn vote(ballot: &AgentCommand, agent: &str, choice: &str) -> AgentVote {
    AgentVote::on(ballot, agent, choice, 1.0, T0)
}

fn decision(fx: &Effects) -> crate::model::ConsensusDecision {
    let d: Vec<_> = fx.decisions().cloned().collect();
    assert_eq!(d.len(), 1, "{fx:?}");
    d.into_iter().next().unwrap()
}

#[test]
fn ballots_name_the_voters_and_options() {
    let e = engine(VOTE);
    let (s, ballots) = started(&e, Layer::Operational);
    let got: Vec<(&str, AgentType, Coordination)> = ballots
        .iter()
        .map(|c| (c.command_id.as_str(), c.agent_type, c.coordination))
        .collect();
    assert_eq!(
        got,
        [
            (
                "s1/decide/v0/1",
                AgentType::Analyst,
                Coordination::Consensus
            ),
            (
                "s1/decide/v1/1",
                AgentType::Analyst,
                Coordination::Consensus
            ),
            (
                "s1/decide/v2/1",
                AgentType::Supervisor,
                Coordination::Consensus
            ),
        ]
    );
    assert_eq!(ballots[0].attributes["vote.options"], "remediate,rollback");
    assert_eq!(s.timer.map(|t| t.due_ms), Some(T0 + 2000));
}

#[test]
fn a_quorum_decides_takes_the_decided_edge_and_later_votes_are_late() {
    let e = engine(VOTE);
    let (mut s, ballots) = started(&e, Layer::Operational);
    let fx = e.on_vote(&mut s, &vote(&ballots[0], "a1", "rollback"), T0 + 10);
    assert!(
        fx.ignored.is_none() && fx.outputs.is_empty(),
        "one vote decides nothing"
    );
    assert_eq!(fx.state, StateChange::Put);
    assert_eq!(saga_view(&s)["current"]["tally"]["rollback"], 1.0);
    // Two of three for rollback: the third cannot overturn it, so the decision comes now.
    let fx = e.on_vote(&mut s, &vote(&ballots[2], "s9", "rollback"), T0 + 20);
    let d = decision(&fx);
    assert_eq!(d.decision_id, "s1/decide/decision/1");
    assert_eq!(
        (d.outcome, d.choice.as_deref()),
        (ConsensusOutcome::Agreed, Some("rollback"))
    );
    assert_eq!((d.votes_cast, d.quorum, d.tally["rollback"]), (2, 2, 2.0));
    assert_eq!(d.voters, ["a1", "s9"]);
    let next = only_command(&fx);
    assert_eq!(
        (next.step.as_str(), next.action.as_str()),
        ("rollback", "roll-back")
    );
    assert_eq!(s.done[0].decision.as_deref(), Some("rollback"));
    assert_eq!(
        e.on_vote(&mut s, &vote(&ballots[1], "a2", "remediate"), T0 + 30)
            .ignored,
        Some(Ignored::Late)
    );
}

#[test]
fn a_duplicate_vote_counts_once_and_a_voter_gets_one_vote() {
    let e = engine(VOTE);
    let (mut s, ballots) = started(&e, Layer::Operational);
    let v = vote(&ballots[0], "a1", "remediate");
    e.on_vote(&mut s, &v, T0 + 10);
    let before = s.clone();
    assert_eq!(
        e.on_vote(&mut s, &v, T0 + 11).ignored,
        Some(Ignored::Duplicate)
    );
    // The same agent answering another ballot is a duplicate too.
    let again = vote(&ballots[1], "a1", "remediate");
    assert_eq!(
        e.on_vote(&mut s, &again, T0 + 12).ignored,
        Some(Ignored::Duplicate)
    );
    assert_eq!(s, before);
    assert_eq!(saga_view(&s)["current"]["tally"]["remediate"], 1.0);
}

#[test]
fn votes_from_agents_not_asked_are_rejected() {
    let e = engine(VOTE);
    let (mut s, ballots) = started(&e, Layer::Operational);
    let before = s.clone();
    let mut v = vote(&ballots[0], "a1", "remediate");
    v.vote_id = "s1/decide/v7/1".into();
    assert_eq!(e.on_vote(&mut s, &v, T0).ignored, Some(Ignored::NotAsked));
    v.vote_id = "some-agents-own-id".into();
    assert_eq!(e.on_vote(&mut s, &v, T0).ignored, Some(Ignored::NotAsked));
    v.vote_id = "s1/decide/v0/2".into();
    assert_eq!(
        e.on_vote(&mut s, &v, T0).ignored,
        Some(Ignored::NotAsked),
        "no round 2"
    );
    let mut wrong = vote(&ballots[2], "o1", "remediate");
    wrong.agent_type = AgentType::Observer;
    assert_eq!(
        e.on_vote(&mut s, &wrong, T0).ignored,
        Some(Ignored::Rejected {
            expected: AgentType::Supervisor,
            got: AgentType::Observer
        })
    );
    let off = vote(&ballots[1], "a2", "reboot");
    assert_eq!(e.on_vote(&mut s, &off, T0).ignored, Some(Ignored::Invalid));
    assert_eq!(s, before);
    let mut store = SagaStore::new();
    assert_eq!(
        store
            .on_vote(&e, &vote(&ballots[0], "a1", "remediate"), T0)
            .ignored,
        Some(Ignored::Unknown)
    );
}

#[test]
fn a_tie_escalates_instead_of_guessing() {
    let e = engine(VOTE);
    let (mut s, ballots) = started(&e, Layer::Operational);
    e.on_vote(&mut s, &vote(&ballots[0], "a1", "remediate"), T0 + 10);
    e.on_vote(&mut s, &vote(&ballots[1], "a2", "rollback"), T0 + 11);
    let t = s.timer().unwrap();
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let d = decision(&fx);
    assert_eq!((d.outcome, d.choice), (ConsensusOutcome::Tied, None));
    let esc: Vec<_> = fx.escalations().collect();
    assert_eq!(esc.len(), 1, "the escalate step reports it, once");
    assert_eq!(
        (esc[0].from_layer, esc[0].to_layer),
        (Layer::Operational, Layer::Tactical)
    );
    assert!(esc[0].reason.contains("tied"), "{}", esc[0].reason);
    // The tactical policy: a review by an analyst, on the tactical layer.
    let review = only_command(&fx);
    assert_eq!(
        (
            review.step.as_str(),
            review.agent_type,
            review.action.as_str()
        ),
        ("approve", AgentType::Analyst, "review-incident")
    );
    assert_eq!(review.layer, Layer::Tactical);
}

#[test]
fn a_deadline_with_too_few_votes_is_no_quorum_and_escalates() {
    let e = engine(VOTE);
    let (mut s, ballots) = started(&e, Layer::Operational);
    e.on_vote(&mut s, &vote(&ballots[0], "a1", "remediate"), T0 + 10);
    let t = s.timer().unwrap();
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let d = decision(&fx);
    assert_eq!(
        (d.outcome, d.votes_cast, d.quorum),
        (ConsensusOutcome::NoQuorum, 1, 2)
    );
    assert_eq!(fx.escalations().count(), 1);
    assert_eq!(only_command(&fx).step, "approve");
}

#[test]
fn a_strategic_approval_waits_and_times_out_into_its_declared_outcome() {
    let e = engine(VOTE);
    // A tactical saga escalates to strategic, where an approval is needed.
    let (mut s, _) = started(&e, Layer::Tactical);
    let t = s.timer().unwrap();
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let ask = only_command(&fx);
    assert_eq!(
        (ask.agent_type, ask.action.as_str(), ask.layer),
        (
            AgentType::Supervisor,
            "approve-remediation",
            Layer::Strategic
        )
    );
    assert_eq!(ask.deadline, t.due_ms + 3000);
    // Nobody answers: the declared outcome, rejected, picks the edge.
    let t2 = s.timer().unwrap();
    assert_eq!(t2.due_ms, t.due_ms + 3000);
    let fx = e.on_timer(&mut s, &t2, t2.due_ms);
    let next = only_command(&fx);
    assert_eq!(next.step, "stand-down");
    assert_eq!(
        next.layer,
        Layer::Strategic,
        "later commands carry the new layer"
    );
    // An approval arriving after the timeout is late.
    assert_eq!(
        e.on_result(&mut s, &ok(&ask, t2.due_ms + 1), t2.due_ms + 1)
            .ignored,
        Some(Ignored::Late)
    );
}

#[test]
fn an_approving_result_lets_the_next_step_run() {
    let e = engine(VOTE);
    let (mut s, _) = started(&e, Layer::Strategic);
    let t = s.timer().unwrap();
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let esc: Vec<_> = fx.escalations().collect();
    assert_eq!(
        (esc[0].from_layer, esc[0].to_layer),
        (Layer::Strategic, Layer::Strategic)
    );
    let ask = only_command(&fx);
    let yes = result(
        &ask,
        ResultStatus::Succeeded,
        &[("approved", "true")],
        t.due_ms + 5,
    );
    let fx = e.on_result(&mut s, &yes, t.due_ms + 5);
    assert_eq!(only_command(&fx).step, "remediate");
    // A refusal would have gone the other way.
    let (mut s, _) = started(&e, Layer::Strategic);
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let no = result(
        &only_command(&fx),
        ResultStatus::Succeeded,
        &[("approved", "false")],
        t.due_ms + 5,
    );
    assert_eq!(
        only_command(&e.on_result(&mut s, &no, t.due_ms + 5)).step,
        "stand-down"
    );
}

#[test]
fn the_state_with_votes_in_flight_stays_under_2_kb() {
    let e = engine(VOTE);
    let mut req = start_req(
        "checkout-svc|2023-11-14T22:10@1700000000000",
        "0b5c6a1e-8f4d-4d1b-9a55-2f0e8c1d7b3a",
    );
    req.workflow = "vote".into();
    req.explanation = "x".repeat(300);
    let (mut s, fx) = e.start(req, T0).unwrap();
    let ballots: Vec<_> = fx.commands().cloned().collect();
    e.on_vote(
        &mut s,
        &vote(&ballots[0], "analyst-7f3c9e2a-west-1", "remediate"),
        T0 + 1,
    );
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.len() <= 2048, "{} bytes: {json}", json.len());
    let back: SagaState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_restart_mid_consensus_restores_the_votes_and_decides_once() {
    let e = engine(VOTE);
    let mut store = SagaStore::new();
    let mut req = start_req("s1", "an-1");
    req.workflow = "vote".into();
    let fx = store.start_or_join(&e, req, T0).unwrap();
    let ballots: Vec<AgentCommand> = fx.commands().cloned().collect();
    let first = vote(&ballots[0], "a1", "remediate");
    store.on_vote(&e, &first, T0 + 10);
    // The process dies after committing the first vote; a new owner restores the changelog.
    let record = store.record("s1").unwrap().to_vec();
    drop(store);
    let mut restored = SagaStore::new();
    restored.insert_record(&record).unwrap();
    assert_eq!(restored.timers().len(), 1, "the voting deadline survives");
    // The vote is delivered again (its offset was committed with the state, but an agent may
    // resend): counted once. The second vote decides.
    assert_eq!(
        restored.on_vote(&e, &first, T0 + 20).ignored,
        Some(Ignored::Duplicate)
    );
    let fx = restored.on_vote(&e, &vote(&ballots[2], "s9", "remediate"), T0 + 30);
    assert_eq!(decision(&fx).voters, ["a1", "s9"]);
    // Nothing can decide it again: the deadline timer was cleared, later votes are late.
    assert!(restored
        .fire_due(&e, T0 + 10_000)
        .iter()
        .all(|(_, fx)| fx.decisions().count() == 0));
    let fx = restored.on_vote(&e, &vote(&ballots[1], "a2", "rollback"), T0 + 40);
    assert_eq!(fx.ignored, Some(Ignored::Late));
}
