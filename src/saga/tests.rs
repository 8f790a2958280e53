//! Engine behaviour end to end on a small workflow, with an injected clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::model::{
    AgentCommand, AgentResult, AgentType, CompensationCommand, Coordination, Layer, ResultStatus,
    SagaEventKind as K,
};

use super::*;

/// a (OBSERVER, undo-a) -> b (ANALYST, undo-b, 2 undo attempts) -> c when severity == high, else d.
/// c (SUPERVISOR) retries 4 times: 100, 300, 500 (capped) ms; d has no compensation.
const FLOW: &str = r#"
[workflows.w]
description = "test flow"
on_failure = "compensate"

[[workflows.w.steps]]
name = "a"
agent_type = "OBSERVER"
action = "collect"
timeout_ms = 1000
retry = { initial_interval_ms = 100, multiplier = 2.0, max_interval_ms = 1000, max_attempts = 3, jitter = 0.0 }
compensation = { action = "undo-a" }
next = [{ to = "b" }]

[[workflows.w.steps]]
name = "b"
agent_type = "ANALYST"
action = "analyse"
timeout_ms = 2000
retry = { initial_interval_ms = 50, multiplier = 2.0, max_interval_ms = 1000, max_attempts = 3, jitter = 0.0 }
compensation = { action = "undo-b", max_attempts = 2, timeout_ms = 700 }
next = [{ to = "c", when = { key = "severity", equals = "high" } }, { to = "d" }]

[[workflows.w.steps]]
name = "c"
agent_type = "SUPERVISOR"
action = "fix"
timeout_ms = 1000
retry = { initial_interval_ms = 100, multiplier = 3.0, max_interval_ms = 500, max_attempts = 4, jitter = 0.0 }

[[workflows.w.steps]]
name = "d"
agent_type = "OBSERVER"
action = "report"
timeout_ms = 1000
"#;

pub(super) const T0: i64 = 1_700_000_000_000;

fn engine_with(on_failure: &str, retention_ms: i64) -> SagaEngine {
    let text = FLOW.replace(
        "on_failure = \"compensate\"",
        &format!("on_failure = \"{on_failure}\""),
    );
    let wf =
        Workflows::from_sources([("w.toml".to_string(), text)]).unwrap_or_else(|e| panic!("{e}"));
    let config = SagaConfig {
        retention_ms,
        ..SagaConfig::default()
    };
    SagaEngine::new(Arc::new(wf), config)
}

fn engine() -> SagaEngine {
    engine_with("compensate", 60_000)
}

pub(super) fn start_req(saga: &str, anomaly: &str) -> SagaStart {
    SagaStart {
        saga_id: saga.into(),
        correlation_id: format!("corr-{saga}"),
        workflow: "w".into(),
        anomaly_ids: vec![anomaly.into()],
        pattern_id: Some("memory-leak".into()),
        layer: Layer::Operational,
        coordination: Coordination::Pipeline,
        urgency: 0.8,
        complexity: 0.4,
        explanation: "workflow w; coordination Pipeline (no rule fired); layer Operational".into(),
        attributes: HashMap::from([("team".to_string(), "payments".to_string())]),
        agent_overrides: BTreeMap::new(),
    }
}

pub(super) fn kinds(fx: &Effects) -> Vec<(K, Option<String>, i32)> {
    fx.events()
        .map(|e| (e.kind, e.step.clone(), e.attempt))
        .collect()
}

pub(super) fn ev(kind: K, step: &str, attempt: i32) -> (K, Option<String>, i32) {
    (kind, Some(step.to_string()), attempt)
}

pub(super) fn saga_ev(kind: K) -> (K, Option<String>, i32) {
    (kind, None, 0)
}

pub(super) fn only_command(fx: &Effects) -> AgentCommand {
    let cmds: Vec<_> = fx.commands().cloned().collect();
    assert_eq!(cmds.len(), 1, "{fx:?}");
    cmds.into_iter().next().unwrap()
}

pub(super) fn only_compensation(fx: &Effects) -> CompensationCommand {
    let cmds: Vec<_> = fx.compensations().cloned().collect();
    assert_eq!(cmds.len(), 1, "{fx:?}");
    cmds.into_iter().next().unwrap()
}

pub(super) fn result(
    c: &AgentCommand,
    status: ResultStatus,
    output: &[(&str, &str)],
    at: i64,
) -> AgentResult {
    AgentResult {
        command_id: c.command_id.clone(),
        saga_id: c.saga_id.clone(),
        correlation_id: c.correlation_id.clone(),
        step: c.step.clone(),
        attempt: c.attempt,
        agent_id: "agent-1".into(),
        agent_type: c.agent_type,
        status,
        output: output
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        error: (status == ResultStatus::Failed).then(|| "boom".to_string()),
        finished_at: at,
        proof: None,
    }
}

pub(super) fn ok(c: &AgentCommand, at: i64) -> AgentResult {
    result(c, ResultStatus::Succeeded, &[], at)
}

pub(super) fn failed(c: &AgentCommand, at: i64) -> AgentResult {
    result(c, ResultStatus::Failed, &[], at)
}

pub(super) fn comp_result(c: &CompensationCommand, status: ResultStatus, at: i64) -> AgentResult {
    AgentResult {
        command_id: c.command_id.clone(),
        saga_id: c.saga_id.clone(),
        correlation_id: c.correlation_id.clone(),
        step: c.step.clone(),
        attempt: c.attempt,
        agent_id: "agent-9".into(),
        agent_type: c.agent_type,
        status,
        output: HashMap::new(),
        error: (status == ResultStatus::Failed).then(|| "cannot undo".to_string()),
        finished_at: at,
        proof: None,
    }
}

pub(super) fn timer_of(fx: &Effects) -> Timer {
    match &fx.timer {
        TimerUpdate::Set(t) => t.clone(),
        other => panic!("no timer set: {other:?}"),
    }
}

/// Runs a -> b (with `severity`) and returns the command of the step after b.
fn through_b(
    e: &SagaEngine,
    s: &mut SagaState,
    first: &AgentCommand,
    severity: &str,
) -> AgentCommand {
    let fx = e.on_result(s, &ok(first, T0 + 10), T0 + 10);
    let b = only_command(&fx);
    let fx = e.on_result(
        s,
        &result(
            &b,
            ResultStatus::Succeeded,
            &[("severity", severity)],
            T0 + 20,
        ),
        T0 + 20,
    );
    only_command(&fx)
}

#[test]
fn happy_path_runs_every_step_and_completes() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    assert_eq!(
        kinds(&fx),
        [saga_ev(K::Started), ev(K::StepStarted, "a", 1)]
    );
    let a = only_command(&fx);
    assert_eq!(a.command_id, "s1/a/1");
    assert_eq!(
        (a.agent_type, a.action.as_str(), a.attempt),
        (AgentType::Observer, "collect", 1)
    );
    assert_eq!((a.deadline, a.issued_at), (T0 + 1000, T0));
    assert_eq!(a.anomaly_ids, ["an-1"]);
    assert_eq!(
        (a.workflow.as_str(), a.correlation_id.as_str()),
        ("w", "corr-s1")
    );
    assert_eq!(a.pattern_id.as_deref(), Some("memory-leak"));
    assert_eq!(a.attributes["team"], "payments");
    assert!(a.explanation.contains("Pipeline"));
    let t = timer_of(&fx);
    assert_eq!((t.kind, t.due_ms), (TimerKind::StepTimeout, T0 + 1000));
    assert_eq!(fx.state, StateChange::Put);

    let fx = e.on_result(&mut s, &ok(&a, T0 + 10), T0 + 10);
    assert_eq!(
        kinds(&fx),
        [ev(K::StepSucceeded, "a", 1), ev(K::StepStarted, "b", 1)]
    );
    let b = only_command(&fx);
    assert_eq!(
        (b.agent_type, b.command_id.as_str()),
        (AgentType::Analyst, "s1/b/1")
    );
    assert_eq!(timer_of(&fx).due_ms, T0 + 10 + 2000);

    let fx = e.on_result(&mut s, &ok(&b, T0 + 20), T0 + 20);
    let d = only_command(&fx);
    assert_eq!(d.step, "d", "no severity: the default edge");

    let fx = e.on_result(&mut s, &ok(&d, T0 + 30), T0 + 30);
    assert_eq!(
        kinds(&fx),
        [ev(K::StepSucceeded, "d", 1), saga_ev(K::Completed)]
    );
    assert_eq!(s.status, SagaStatus::Completed);
    assert_eq!(fx.commands().count(), 0);
    let t = timer_of(&fx);
    assert_eq!((t.kind, t.due_ms), (TimerKind::Expire, T0 + 30 + 60_000));
    assert!(
        s.route.explanation.is_empty(),
        "finished sagas drop their routing context"
    );
}

#[test]
fn conditional_edges_pick_the_branch_from_the_output() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let next = through_b(&e, &mut s, &only_command(&fx), "high");
    assert_eq!(
        (next.step.as_str(), next.agent_type),
        ("c", AgentType::Supervisor)
    );
    let (mut s, fx) = e.start(start_req("s2", "an-2"), T0).unwrap();
    assert_eq!(through_b(&e, &mut s, &only_command(&fx), "low").step, "d");
}

#[test]
fn a_failing_step_backs_off_exactly_then_compensates_in_reverse_order() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let a = only_command(&fx);
    let mut c = through_b(&e, &mut s, &a, "high");
    let mut now = T0 + 100;
    let mut retry_at = Vec::new();
    for attempt in 1..=3 {
        assert_eq!(
            (c.attempt, c.command_id.clone()),
            (attempt, format!("s1/c/{attempt}"))
        );
        let fx = e.on_result(&mut s, &failed(&c, now), now);
        assert_eq!(
            kinds(&fx),
            [
                ev(K::StepFailed, "c", attempt),
                ev(K::RetryScheduled, "c", attempt + 1)
            ]
        );
        let sched = fx.events().nth(1).unwrap();
        assert_eq!(sched.reason.as_deref(), Some("boom"));
        let t = timer_of(&fx);
        assert_eq!((t.kind, Some(t.due_ms)), (TimerKind::Retry, sched.retry_at));
        retry_at.push(t.due_ms - now);
        // Nothing happens before the timer is due.
        assert_eq!(
            e.on_timer(&mut s, &t, t.due_ms - 1).ignored,
            Some(Ignored::StaleTimer)
        );
        now = t.due_ms;
        let fx = e.on_timer(&mut s, &t, now);
        assert_eq!(kinds(&fx), [ev(K::StepStarted, "c", attempt + 1)]);
        c = only_command(&fx);
        now += 5;
    }
    assert_eq!(
        retry_at,
        [100, 300, 500],
        "initial * multiplier^(n-1), capped at max"
    );

    let fx = e.on_result(&mut s, &failed(&c, now), now);
    assert_eq!(
        kinds(&fx),
        [ev(K::StepFailed, "c", 4), saga_ev(K::Compensating)]
    );
    assert_eq!(s.status, SagaStatus::Compensating);
    let undo_b = only_compensation(&fx);
    assert_eq!(undo_b.command_id, "s1/b/undo/1");
    assert_eq!(undo_b.compensates_command_id, "s1/b/1");
    assert_eq!(
        (undo_b.agent_type, undo_b.action.as_str(), undo_b.attempt),
        (AgentType::Analyst, "undo-b", 1)
    );
    assert!(
        undo_b.reason.contains("step c failed: boom"),
        "{}",
        undo_b.reason
    );
    assert_eq!(
        timer_of(&fx).due_ms,
        now + 700,
        "the compensation's own timeout"
    );

    let fx = e.on_result(
        &mut s,
        &comp_result(&undo_b, ResultStatus::Succeeded, now + 1),
        now + 1,
    );
    let undo_a = only_compensation(&fx);
    assert_eq!(
        (undo_a.step.as_str(), undo_a.action.as_str()),
        ("a", "undo-a")
    );
    assert_eq!(
        (undo_a.compensates_command_id.as_str(), undo_a.agent_type),
        ("s1/a/1", AgentType::Observer)
    );
    assert!(kinds(&fx).is_empty());

    let fx = e.on_result(
        &mut s,
        &comp_result(&undo_a, ResultStatus::Succeeded, now + 2),
        now + 2,
    );
    assert_eq!(kinds(&fx), [saga_ev(K::Compensated)]);
    assert_eq!(s.status, SagaStatus::Compensated);
    assert_eq!(fx.compensations().count() + fx.commands().count(), 0);
}

#[test]
fn on_failure_fail_ends_failed_without_compensating() {
    let e = engine_with("fail", 0);
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let mut c = through_b(&e, &mut s, &only_command(&fx), "high");
    for _ in 1..4 {
        let fx = e.on_result(&mut s, &failed(&c, T0 + 50), T0 + 50);
        let t = timer_of(&fx);
        c = only_command(&e.on_timer(&mut s, &t, t.due_ms));
    }
    let fx = e.on_result(&mut s, &failed(&c, T0 + 9_000), T0 + 9_000);
    assert_eq!(kinds(&fx), [ev(K::StepFailed, "c", 4), saga_ev(K::Failed)]);
    assert_eq!(fx.compensations().count(), 0);
    assert_eq!(s.status, SagaStatus::Failed);
    // Retention 0: the state is deleted at once and no timer is left.
    assert_eq!(
        (fx.state, &fx.timer),
        (StateChange::Delete, &TimerUpdate::Clear)
    );
}

#[test]
fn a_silent_agent_times_out_and_the_retries_follow() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let a1 = only_command(&fx);
    let t = timer_of(&fx);
    let fx = e.on_timer(&mut s, &t, T0 + 1000);
    assert_eq!(
        kinds(&fx),
        [ev(K::StepTimedOut, "a", 1), ev(K::RetryScheduled, "a", 2)]
    );
    let retry = timer_of(&fx);
    assert_eq!(
        (retry.kind, retry.due_ms),
        (TimerKind::Retry, T0 + 1000 + 100)
    );
    // The agent wakes up after its timeout: too late, the attempt already counted as failed.
    assert_eq!(
        e.on_result(&mut s, &ok(&a1, T0 + 1050), T0 + 1050).ignored,
        Some(Ignored::Late)
    );
    let fx = e.on_timer(&mut s, &retry, retry.due_ms);
    let a2 = only_command(&fx);
    assert_eq!((a2.attempt, a2.command_id.as_str()), (2, "s1/a/2"));
    assert_eq!(timer_of(&fx).due_ms, retry.due_ms + 1000);
    // Still too late for attempt 1; attempt 2 is accepted.
    assert_eq!(
        e.on_result(&mut s, &ok(&a1, T0 + 1200), T0 + 1200).ignored,
        Some(Ignored::Late)
    );
    let fx = e.on_result(&mut s, &ok(&a2, T0 + 1300), T0 + 1300);
    assert_eq!(only_command(&fx).step, "b");
    assert_eq!(s.done[0].attempt, 2);
}

#[test]
fn a_failed_compensation_is_retried_then_reported_and_escalated() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let mut c = through_b(&e, &mut s, &only_command(&fx), "high");
    let mut fx;
    loop {
        fx = e.on_result(&mut s, &failed(&c, T0 + 50), T0 + 50);
        if s.status == SagaStatus::Compensating {
            break;
        }
        let t = timer_of(&fx);
        c = only_command(&e.on_timer(&mut s, &t, t.due_ms));
    }
    let undo1 = only_compensation(&fx);
    let fx = e.on_result(
        &mut s,
        &comp_result(&undo1, ResultStatus::Failed, T0 + 60),
        T0 + 60,
    );
    assert_eq!(kinds(&fx), [ev(K::RetryScheduled, "b", 2)]);
    let sched = fx.events().next().unwrap();
    assert_eq!(sched.command_id.as_deref(), Some("s1/b/undo/1"));
    assert_eq!(sched.retry_at, Some(T0 + 60 + 50), "the step's backoff");
    let t = timer_of(&fx);
    assert_eq!(t.kind, TimerKind::CompensationRetry);
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    let undo2 = only_compensation(&fx);
    assert_eq!(
        (undo2.attempt, undo2.command_id.as_str()),
        (2, "s1/b/undo/2")
    );
    // The second attempt is silent: its timeout is the last failure allowed.
    let t = timer_of(&fx);
    assert_eq!(t.kind, TimerKind::CompensationTimeout);
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    assert_eq!(
        kinds(&fx),
        [ev(K::CompensationFailed, "b", 2), saga_ev(K::Failed)]
    );
    let esc: Vec<_> = fx.escalations().collect();
    assert_eq!(esc.len(), 1);
    assert_eq!(
        (esc[0].from_layer, esc[0].to_layer),
        (Layer::Operational, Layer::Tactical)
    );
    assert_eq!(esc[0].step.as_deref(), Some("b"));
    assert!(
        esc[0].reason.contains("not compensated: b, a"),
        "{}",
        esc[0].reason
    );
    assert_eq!(s.status, SagaStatus::Failed);
    // The failed compensation's result arriving now is late; the undone-never step a gets none.
    let late = comp_result(&undo2, ResultStatus::Succeeded, t.due_ms + 1);
    assert_eq!(
        e.on_result(&mut s, &late, t.due_ms + 1).ignored,
        Some(Ignored::Late)
    );
}

#[test]
fn duplicate_late_and_unknown_results_change_nothing() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let a = only_command(&fx);
    let fx = e.on_result(&mut s, &ok(&a, T0 + 10), T0 + 10);
    let b = only_command(&fx);
    let snapshot = s.clone();
    let dup = e.on_result(&mut s, &ok(&a, T0 + 11), T0 + 11);
    assert_eq!(dup, Effects::ignored(Ignored::Duplicate));
    let mut unknown = ok(&b, T0 + 12);
    unknown.command_id = "s1/b/7".into();
    assert_eq!(
        e.on_result(&mut s, &unknown, T0 + 12).ignored,
        Some(Ignored::Unknown)
    );
    unknown.command_id = "elsewhere/b/1".into();
    assert_eq!(
        e.on_result(&mut s, &unknown, T0 + 12).ignored,
        Some(Ignored::Unknown)
    );
    unknown.command_id = "s1/zz/1".into();
    assert_eq!(
        e.on_result(&mut s, &unknown, T0 + 12).ignored,
        Some(Ignored::Unknown)
    );
    let mut other_saga = ok(&b, T0 + 12);
    other_saga.saga_id = "s2".into();
    assert_eq!(
        e.on_result(&mut s, &other_saga, T0 + 12).ignored,
        Some(Ignored::Unknown)
    );
    assert_eq!(s, snapshot, "ignored results leave the state untouched");

    // A FAILED result delivered twice counts once.
    let fx = e.on_result(&mut s, &failed(&b, T0 + 20), T0 + 20);
    assert_eq!(fx.events().count(), 2);
    assert_eq!(
        e.on_result(&mut s, &failed(&b, T0 + 21), T0 + 21).ignored,
        Some(Ignored::Duplicate)
    );
    // The store counts results for sagas it does not hold as unknown.
    let mut store = SagaStore::new();
    assert_eq!(
        store.on_result(&e, &ok(&a, T0), T0).ignored,
        Some(Ignored::Unknown)
    );
}

#[test]
fn results_after_completion_are_duplicates_until_the_saga_expires() {
    let e = engine();
    let mut store = SagaStore::new();
    let fx = store
        .start_or_join(&e, start_req("s1", "an-1"), T0)
        .unwrap();
    let a = only_command(&fx);
    let census = store.census();
    assert_eq!(
        (
            census.count(SagaStatus::Running),
            census.active(),
            census.timers
        ),
        (1, 1, 1)
    );
    let b = only_command(&store.on_result(&e, &ok(&a, T0 + 1), T0 + 1));
    let d = only_command(&store.on_result(&e, &ok(&b, T0 + 2), T0 + 2));
    store.on_result(&e, &ok(&d, T0 + 3), T0 + 3);
    assert_eq!(store.get("s1").unwrap().status, SagaStatus::Completed);
    let census = store.census();
    assert_eq!(
        (
            census.count(SagaStatus::Running),
            census.count(SagaStatus::Completed)
        ),
        (0, 1)
    );
    assert_eq!((census.active(), census.timers), (0, 1), "the expiry timer");
    assert_eq!(
        store.on_result(&e, &ok(&d, T0 + 4), T0 + 4).ignored,
        Some(Ignored::Duplicate)
    );
    assert_eq!(store.timers().next_due(), Some(T0 + 3 + 60_000));
    assert!(store.fire_due(&e, T0 + 60_002).is_empty());
    let fired = store.fire_due(&e, T0 + 60_003);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].1.state, StateChange::Delete);
    assert!(store.is_empty() && store.timers().is_empty());
    assert_eq!(store.census(), SagaCensus::default());
    assert_eq!(
        store
            .on_result(&e, &ok(&d, T0 + 60_004), T0 + 60_004)
            .ignored,
        Some(Ignored::Unknown)
    );
}

#[test]
fn a_result_from_the_wrong_agent_type_is_rejected() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let a = only_command(&fx);
    let mut r = ok(&a, T0 + 1);
    r.agent_type = AgentType::Analyst;
    let before = s.clone();
    let fx = e.on_result(&mut s, &r, T0 + 1);
    assert_eq!(
        fx.ignored,
        Some(Ignored::Rejected {
            expected: AgentType::Observer,
            got: AgentType::Analyst
        })
    );
    assert_eq!(fx.ignored.unwrap().label(), "rejected");
    assert_eq!(s, before);
    // Routing reassigned step a to an analyst: now the analyst is the one allowed.
    let mut req = start_req("s2", "an-2");
    req.agent_overrides.insert("a".into(), AgentType::Analyst);
    let (mut s2, fx) = e.start(req, T0).unwrap();
    let a2 = only_command(&fx);
    assert_eq!(a2.agent_type, AgentType::Analyst);
    assert_eq!(e.on_result(&mut s2, &ok(&a2, T0 + 1), T0 + 1).ignored, None);
}

#[test]
fn a_storm_of_100_anomalies_makes_one_saga() {
    let e = engine();
    let mut store = SagaStore::new();
    let mut started = 0;
    for i in 0..100 {
        let fx = store
            .start_or_join(&e, start_req("incident-7", &format!("an-{i}")), T0 + i)
            .unwrap();
        started += fx.events().filter(|ev| ev.kind == K::Started).count();
        assert!(fx.ignored.is_none());
    }
    let again = store
        .start_or_join(&e, start_req("incident-7", "an-3"), T0 + 200)
        .unwrap();
    assert_eq!(again.ignored, Some(Ignored::Duplicate));
    assert_eq!((store.len(), started), (1, 1));
    let s = store.get("incident-7").unwrap();
    assert_eq!(s.anomaly_ids.len(), SagaConfig::default().max_anomaly_ids);
    assert_eq!(s.anomaly_ids.len() + s.more_anomalies as usize, 100);
    assert_eq!(store.timers().len(), 1);
}

#[test]
fn the_state_round_trips_through_json_and_stays_small() {
    let e = engine();
    let mut req = start_req(
        "checkout-svc|2023-11-14T22:10",
        "0b5c6a1e-8f4d-4d1b-9a55-2f0e8c1d7b3a",
    );
    req.explanation = "pattern memory-leak (confidence 0.93); urgency 0.81 = severity 0.75 x score 0.9 \
        amplified 1.2 by topology departure; workflow memory-leak-remediation; coordination Pipeline \
        (no rule fired: the workflow's default); layer Operational"
        .into();
    let (mut s, fx) = e.start(req, T0).unwrap();
    for i in 0..3 {
        e.join(
            &mut s,
            &format!("7d1f0c2a-3b4e-4f5a-8c6d-9e0f1a2b3c4{i}"),
            T0 + 1,
        );
    }
    let a = only_command(&fx);
    let fx = e.on_result(&mut s, &ok(&a, T0 + 10), T0 + 10);
    let b = only_command(&fx);
    e.on_result(&mut s, &failed(&b, T0 + 20), T0 + 20);
    let json = serde_json::to_string(&s).unwrap();
    let back: SagaState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    // The store holds each saga as this record, so its size is the saga's memory, less the map
    // entry and timer (`cargo bench --bench saga_memory` measures the whole).
    assert!(json.len() <= 2048, "{} bytes: {json}", json.len());
}

#[test]
fn after_a_restore_timers_that_came_due_while_down_fire() {
    let e = engine();
    let mut store = SagaStore::new();
    let mut first = Vec::new();
    for i in 0..10 {
        let fx = store.start_or_join(
            &e,
            start_req(&format!("s{i}"), &format!("an-{i}")),
            T0 + i * 100,
        );
        first.push(only_command(&fx.unwrap()));
    }
    // Saga s0 moves on to step b before the crash, so its timer is b's.
    let a = &first[0];
    store.on_result(&e, &ok(a, T0 + 50), T0 + 50);
    // The changelog holds the states as JSON; the process dies; a new one restores them.
    let changelog: Vec<String> = store
        .iter()
        .map(|s| serde_json::to_string(&s).unwrap())
        .collect();
    drop(store);
    let mut restored =
        SagaStore::restore(changelog.iter().map(|j| serde_json::from_str(j).unwrap()));
    assert_eq!((restored.len(), restored.timers().len()), (10, 10));
    // Back 1.45 s after the start: a's timeouts of s0..s4 (due T0 + 1000 + i*100) have passed.
    let now = T0 + 1_450;
    let fired = restored.fire_due(&e, now);
    let ids: Vec<&str> = fired.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["s1", "s2", "s3", "s4"],
        "earliest first; s0 is waiting on b"
    );
    for (_, fx) in &fired {
        assert_eq!(kinds(fx)[0].0, K::StepTimedOut);
        assert_eq!(timer_of(fx).kind, TimerKind::Retry);
    }
    assert_eq!(restored.timers().len(), 10);
    assert!(restored.fire_due(&e, now).is_empty(), "each fires once");
}

#[test]
fn a_replaced_timer_is_stale() {
    let e = engine();
    let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
    let timeout_a = timer_of(&fx);
    e.on_result(&mut s, &ok(&only_command(&fx), T0 + 5), T0 + 5);
    let fx = e.on_timer(&mut s, &timeout_a, T0 + 5_000);
    assert_eq!(fx.ignored, Some(Ignored::StaleTimer));
}

#[test]
fn the_same_inputs_give_the_same_effects() {
    let run = || {
        let e = engine();
        let (mut s, fx) = e.start(start_req("s1", "an-1"), T0).unwrap();
        let t = timer_of(&fx);
        let fx2 = e.on_timer(&mut s, &t, T0 + 1000);
        (fx, fx2, s)
    };
    assert_eq!(run(), run());
}

/// A changelog record whose header parses but whose body does not (here a non-finite float
/// that JSON wrote as `null`) used to be stored on restore, and `get` then panicked on it.
#[test]
fn restore_refuses_a_record_whose_body_does_not_decode() {
    let mut store = SagaStore::new();
    store
        .start_or_join(&engine(), start_req("s1", "a1"), 0)
        .unwrap();
    let mut record: serde_json::Value =
        serde_json::from_slice(store.record("s1").unwrap()).unwrap();
    record["route"]["urgency"] = serde_json::Value::Null;
    let bad = serde_json::to_vec(&record).unwrap();

    let mut restored = SagaStore::new();
    assert!(restored.insert_record(&bad).is_err());
    assert!(restored.get("s1").is_none());
    assert_eq!(restored.len(), 0);
    assert!(restored.insert_record(store.record("s1").unwrap()).is_ok());
    assert!(restored.get("s1").is_some());
}

/// Found by `cargo fuzz run saga_machine` (fuzz/regressions/): a saga started with a NaN
/// urgency was stored with `null` there, and reading it back panicked.
#[test]
fn a_saga_with_a_non_finite_number_is_refused_not_stored() {
    let mut store = SagaStore::new();
    let mut req = start_req("s1", "a1");
    req.urgency = f64::NAN;
    let error = store.start_or_join(&engine(), req, 0).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("urgency must be a finite number"),
        "{error}"
    );
    assert_eq!(store.len(), 0);
    assert!(store.iter().next().is_none());
}
