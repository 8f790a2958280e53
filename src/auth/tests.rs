//! The gate at the saga processor: signed commands out, forged, replayed, misdirected and
//! stale answers refused with their reason codes, and the saga unaffected by any of them.

use std::sync::Arc;

use crate::model::{
    AgentCommand, AgentResult, AgentType, AgentVote, Coordination, Layer, ResultStatus,
};
use crate::processor::{Event, Output, ProcessError, Processor, SagaProcessor};
use crate::saga::{SagaConfig, SagaEngine, Workflows};
use crate::security::Secret;
use crate::telemetry::Metrics;

use super::*;

const T0: i64 = 1_700_000_000_000;

fn key(id: &str, agent_type: AgentType, state: KeyState) -> Key {
    Key {
        id: id.into(),
        agent_type,
        state,
        secret: Secret::new(format!("{id}-secret-0123456789abcdef0123456789")),
    }
}

fn keyring() -> Keyring {
    Keyring::from_keys([
        key("obs-1", AgentType::Observer, KeyState::Active),
        key("ana-1", AgentType::Analyst, KeyState::Active),
        key("sup-1", AgentType::Supervisor, KeyState::Active),
        key("obs-0", AgentType::Observer, KeyState::Retired),
    ])
}

fn processor(keyring: Keyring) -> SagaProcessor {
    let workflows = Arc::new(Workflows::builtin().unwrap());
    let engine = Arc::new(SagaEngine::new(workflows, SagaConfig::default()));
    SagaProcessor::new(engine, &Metrics::new().sagas).with_gate(Some(AnswerGate::new(keyring)))
}

fn trigger(saga_id: &str) -> AgentCommand {
    AgentCommand {
        command_id: format!("{saga_id}/route"),
        saga_id: saga_id.into(),
        correlation_id: "checkout".into(),
        anomaly_ids: vec![format!("{saga_id}-an-1")],
        workflow: "triage".into(),
        step: String::new(),
        agent_type: AgentType::Analyst,
        action: String::new(),
        layer: Layer::Operational,
        coordination: Coordination::Pipeline,
        pattern_id: None,
        urgency: 0.5,
        complexity: 0.2,
        attempt: 1,
        deadline: T0 + 60_000,
        explanation: "test".into(),
        attributes: Default::default(),
        issued_at: T0,
        partition_key: "checkout".into(),
        agent_id: None,
        proof: None,
    }
}

fn commands(out: &[Output]) -> Vec<AgentCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Command(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// The answer an honest agent gives: it copies the command's incarnation and signs.
fn answer(keyring: &Keyring, c: &AgentCommand, status: ResultStatus) -> AgentResult {
    let mut r = AgentResult {
        command_id: c.command_id.clone(),
        saga_id: c.saga_id.clone(),
        correlation_id: c.correlation_id.clone(),
        step: c.step.clone(),
        attempt: c.attempt,
        agent_id: "agent-7".into(),
        agent_type: c.agent_type,
        status,
        output: Default::default(),
        error: None,
        finished_at: T0 + 5,
        proof: None,
    };
    let incarnation = c.proof.as_ref().unwrap().incarnation;
    sign(keyring, &mut r, incarnation).unwrap();
    r
}

fn refused(p: &mut SagaProcessor, r: AgentResult) -> &'static str {
    let mut out = Vec::new();
    match p.process(Event::AgentResult(r), T0 + 10, &mut out) {
        Err(ProcessError::Unauthenticated(rejection)) => {
            assert!(out.is_empty(), "a refused answer emits nothing");
            rejection.code()
        }
        other => panic!("expected a rejection, got {other:?} with {out:?}"),
    }
}

/// A started saga and its first, signed command.
fn started(p: &mut SagaProcessor) -> AgentCommand {
    let mut out = Vec::new();
    p.on_incident(trigger("s1"), Default::default(), T0, &mut out)
        .unwrap();
    commands(&out).remove(0)
}

#[test]
fn commands_are_signed_for_the_saga_incarnation() {
    let keys = keyring();
    let mut p = processor(keys.clone());
    let c = started(&mut p);
    let proof = c.proof.clone().expect("signed");
    assert_eq!(proof.incarnation, p.store().get("s1").unwrap().started_at);
    assert_eq!(keys.get(&proof.key_id).unwrap().agent_type, c.agent_type);
    verify_signature(&keys, &c, Some(proof.incarnation)).unwrap();
    let mut altered = c.clone();
    altered.action = "rm -rf".into();
    assert_eq!(
        verify_signature(&keys, &altered, None).unwrap_err().code(),
        "auth_forged"
    );
}

#[test]
fn forged_answers_are_refused_and_the_saga_is_unaffected() {
    let keys = keyring();
    let mut p = processor(keys.clone());
    let c = started(&mut p);
    let before = p.store().record("s1").unwrap().to_vec();

    let mut unsigned = answer(&keys, &c, ResultStatus::Failed);
    unsigned.proof = None;
    assert_eq!(refused(&mut p, unsigned), "auth_unsigned");

    let mut tampered = answer(&keys, &c, ResultStatus::Succeeded);
    tampered.status = ResultStatus::Failed;
    assert_eq!(refused(&mut p, tampered), "auth_forged");

    let mut steered = answer(&keys, &c, ResultStatus::Succeeded);
    steered.output.insert("severity".into(), "critical".into());
    assert_eq!(refused(&mut p, steered), "auth_forged");

    // An attacker who knows the key id but not its secret.
    let real = keys.active(c.agent_type).unwrap().clone();
    let attacker = Keyring::from_keys([Key {
        secret: Secret::new("attacker-guess-0123456789abcdef0123"),
        ..real
    }]);
    let mut guessed = answer(&keys, &c, ResultStatus::Succeeded);
    let incarnation = guessed.proof.clone().unwrap().incarnation;
    sign(&attacker, &mut guessed, incarnation).unwrap();
    assert_eq!(refused(&mut p, guessed), "auth_forged");

    let mut unknown = answer(&keys, &c, ResultStatus::Succeeded);
    unknown.proof.as_mut().unwrap().key_id = "nobody".into();
    assert_eq!(refused(&mut p, unknown), "auth_unknown_key");

    assert_eq!(
        p.store().record("s1").unwrap(),
        &before[..],
        "the saga never moved"
    );
    // The genuine answer still moves it on.
    let mut out = Vec::new();
    p.process(
        Event::AgentResult(answer(&keys, &c, ResultStatus::Succeeded)),
        T0 + 20,
        &mut out,
    )
    .unwrap();
    assert!(!out.is_empty());
}

#[test]
fn replayed_misdirected_and_stale_answers_are_refused() {
    let keys = keyring();
    let mut p = processor(keys.clone());
    let c = started(&mut p);
    let genuine = answer(&keys, &c, ResultStatus::Succeeded);
    let mut out = Vec::new();
    p.process(Event::AgentResult(genuine.clone()), T0 + 20, &mut out)
        .unwrap();
    let after = p.store().record("s1").unwrap().to_vec();

    assert_eq!(refused(&mut p, genuine.clone()), "auth_replayed");

    // The next command, answered by an agent type the saga did not ask, with its own valid key.
    let next = commands(&out).remove(0);
    let mut wrong_agent = answer(&keys, &next, ResultStatus::Succeeded);
    wrong_agent.agent_type = match next.agent_type {
        AgentType::Observer => AgentType::Analyst,
        _ => AgentType::Observer,
    };
    let incarnation = wrong_agent.proof.clone().unwrap().incarnation;
    sign(&keys, &mut wrong_agent, incarnation).unwrap();
    assert_eq!(refused(&mut p, wrong_agent), "auth_agent_not_asked");

    // An answer signed for an earlier saga under the same id.
    let mut stale = answer(&keys, &next, ResultStatus::Succeeded);
    sign(&keys, &mut stale, incarnation - 60_000).unwrap();
    assert_eq!(refused(&mut p, stale), "auth_stale_incarnation");

    assert_eq!(
        p.store().record("s1").unwrap(),
        &after[..],
        "the saga never moved"
    );

    // The step times out and is retried: the first attempt's genuine answer now comes too late.
    let mut later = Vec::new();
    p.on_tick(next.deadline + 1, &mut later);
    p.on_tick(next.deadline + 3_600_000, &mut later);
    let late = answer(&keys, &next, ResultStatus::Succeeded);
    let before = p.store().record("s1").map(<[u8]>::to_vec);
    assert_eq!(refused(&mut p, late), "auth_wrong_attempt");
    assert_eq!(p.store().record("s1").map(<[u8]>::to_vec), before);
}

#[test]
fn retired_keys_are_refused_by_name_and_rotation_keeps_two_keys_live() {
    let old = key("obs-old", AgentType::Observer, KeyState::Active);
    let new = key("obs-new", AgentType::Observer, KeyState::Active);
    let mut r = AgentResult {
        command_id: "s/a/1".into(),
        saga_id: "s".into(),
        correlation_id: "c".into(),
        step: "a".into(),
        attempt: 1,
        agent_id: "o-1".into(),
        agent_type: AgentType::Observer,
        status: ResultStatus::Succeeded,
        output: Default::default(),
        error: None,
        finished_at: T0,
        proof: None,
    };
    // Mid-rotation: agents still sign with the old key while Aura already signs with the new.
    let agent_side = Keyring::from_keys([old.clone()]);
    let aura_side = Keyring::from_keys([
        new.clone(),
        Key {
            state: KeyState::VerifyOnly,
            ..old.clone()
        },
    ]);
    sign(&agent_side, &mut r, T0).unwrap();
    verify_signature(&aura_side, &r, Some(T0)).unwrap();
    let mut fresh = r.clone();
    sign(&Keyring::from_keys([new.clone()]), &mut fresh, T0).unwrap();
    verify_signature(&aura_side, &fresh, Some(T0)).unwrap();
    // After it: the old key is retired and named as such.
    let after = Keyring::from_keys([
        new,
        Key {
            state: KeyState::Retired,
            ..old
        },
    ]);
    assert_eq!(
        verify_signature(&after, &r, Some(T0)).unwrap_err().code(),
        "auth_retired_key"
    );
    verify_signature(&after, &fresh, Some(T0)).unwrap();
}

#[test]
fn votes_from_agent_types_not_asked_are_refused() {
    let keys = keyring();
    let mut vote = AgentVote {
        vote_id: "v1".into(),
        saga_id: "s".into(),
        step: "decide".into(),
        agent_id: "o-1".into(),
        agent_type: AgentType::Observer,
        choice: "rollback".into(),
        weight: 1.0,
        reason: "r".into(),
        cast_at: T0,
        proof: None,
    };
    sign(&keys, &mut vote, T0).unwrap();
    let asked = [AgentType::Analyst, AgentType::Supervisor];
    assert_eq!(
        verify_vote(&keys, &vote, &asked, T0).unwrap_err().code(),
        "auth_agent_not_asked"
    );
    verify_vote(&keys, &vote, &[AgentType::Observer], T0).unwrap();
    let mut heavier = vote.clone();
    heavier.weight = 5.0;
    assert_eq!(
        verify_vote(&keys, &heavier, &[AgentType::Observer], T0)
            .unwrap_err()
            .code(),
        "auth_forged"
    );
    assert_eq!(
        verify_vote(&keys, &vote, &[AgentType::Observer], T0 + 1)
            .unwrap_err()
            .code(),
        "auth_stale_incarnation"
    );
}

#[test]
fn compensations_are_signed_like_commands() {
    let keys = keyring();
    let gate = AnswerGate::new(keys.clone());
    let mut outputs = vec![crate::saga::SagaOutput::Compensation(
        crate::model::CompensationCommand {
            command_id: "s1/undo/1".into(),
            saga_id: "s1".into(),
            correlation_id: "c".into(),
            compensates_command_id: "s1/a/1".into(),
            step: "a".into(),
            agent_type: AgentType::Supervisor,
            action: "rollback".into(),
            attempt: 1,
            reason: "step b failed".into(),
            issued_at: T0,
            partition_key: "c".into(),
            proof: None,
        },
    )];
    gate.sign_outputs(&mut outputs, T0).unwrap();
    let crate::saga::SagaOutput::Compensation(c) = &outputs[0] else {
        unreachable!()
    };
    assert_eq!(c.proof.as_ref().unwrap().key_id, "sup-1");
    verify_signature(&keys, c, Some(T0)).unwrap();
    let mut redirected = c.clone();
    redirected.compensates_command_id = "s1/other/1".into();
    assert_eq!(
        verify_signature(&keys, &redirected, Some(T0))
            .unwrap_err()
            .code(),
        "auth_forged"
    );
}
