//! Fan-outs, supervisors and bounded loops, end to end on the engine with an injected clock.

use std::sync::Arc;

use crate::model::{AgentCommand, AgentType, Coordination, ResultStatus, SagaEventKind as K};

use super::tests::{
    comp_result, failed, kinds, ok, only_command, only_compensation, result, start_req, timer_of,
    T0,
};
use super::*;

/// prepare (undo-prepare) -> investigate: a crew of three (metrics, logs, traces), one attempt
/// each, undone by undo-investigate, within 5 s -> report.
const CREW: &str = r#"
[workflows.crew]
on_failure = "compensate"

[[workflows.crew.steps]]
name = "prepare"
agent_type = "OBSERVER"
action = "prepare"
timeout_ms = 1000
compensation = { action = "undo-prepare" }
next = [{ to = "investigate" }]

[[workflows.crew.steps]]
name = "investigate"
action = "investigate"
timeout_ms = 5000
retry = { initial_interval_ms = 100, multiplier = 2.0, max_interval_ms = 1000, max_attempts = 1 }
compensation = { action = "undo-investigate" }
next = [{ to = "report" }]

[workflows.crew.steps.fan_out]
branches = [
  { agent_type = "OBSERVER", action = "query-metrics" },
  { agent_type = "OBSERVER", action = "search-logs" },
  { agent_type = "ANALYST", action = "sample-traces" },
]
join = "all"

[[workflows.crew.steps]]
name = "report"
agent_type = "ANALYST"
action = "report"
timeout_ms = 1000
"#;

/// plan: a supervisor plans up to 5 sub-tasks, all must succeed, then reviews them -> verify.
const PLAN: &str = r#"
[workflows.plan]
[[workflows.plan.steps]]
name = "plan"
agent_type = "SUPERVISOR"
action = "plan-remediation"
timeout_ms = 1000
retry = { initial_interval_ms = 100, multiplier = 2.0, max_interval_ms = 1000, max_attempts = 2 }
compensation = { action = "revert-subtask" }
next = [{ to = "verify" }]
supervisor = { max_subtasks = 5, join = "all", final_action = "review-remediation" }

[[workflows.plan.steps]]
name = "verify"
agent_type = "OBSERVER"
action = "verify"
timeout_ms = 1000
"#;

/// remediate -> verify; back to remediate at most twice while not verified, then give up.
const LOOP: &str = r#"
[workflows.retry-loop]
[[workflows.retry-loop.steps]]
name = "remediate"
agent_type = "SUPERVISOR"
action = "remediate"
timeout_ms = 1000
retry = { initial_interval_ms = 100, multiplier = 2.0, max_interval_ms = 1000, max_attempts = 2 }
next = [{ to = "verify" }]

[[workflows.retry-loop.steps]]
name = "verify"
agent_type = "OBSERVER"
action = "verify"
timeout_ms = 1000
next = [
  { to = "remediate", when = { key = "verified", equals = "false" }, max_times = 2 },
  { to = "give-up", when = { key = "verified", equals = "false" } },
]

[[workflows.retry-loop.steps]]
name = "give-up"
agent_type = "ANALYST"
action = "report-unverified"
timeout_ms = 1000
"#;

fn engine(text: &str) -> SagaEngine {
    let wf = Workflows::from_sources([("t.toml".to_string(), text.to_string())])
        .unwrap_or_else(|e| panic!("{e}"));
    SagaEngine::new(Arc::new(wf), SagaConfig::default())
}

fn start(e: &SagaEngine, workflow: &str) -> (SagaState, Effects) {
    let mut req = start_req("s1", "an-1");
    req.workflow = workflow.into();
    e.start(req, T0).unwrap()
}

fn commands(fx: &Effects) -> Vec<AgentCommand> {
    fx.commands().cloned().collect()
}

/// Starts the crew workflow and succeeds `prepare`: the three branch commands.
fn crew_started(e: &SagaEngine) -> (SagaState, Vec<AgentCommand>) {
    let (mut s, fx) = start(e, "crew");
    let fx = e.on_result(&mut s, &ok(&only_command(&fx), T0 + 10), T0 + 10);
    (s, commands(&fx))
}

#[test]
fn a_fan_out_commands_the_whole_crew_and_joins_when_all_succeed() {
    let e = engine(CREW);
    let (mut s, branches) = crew_started(&e);
    let got: Vec<(&str, AgentType, &str, Coordination)> = branches
        .iter()
        .map(|c| {
            (
                c.command_id.as_str(),
                c.agent_type,
                c.action.as_str(),
                c.coordination,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "s1/investigate/b0/1",
                AgentType::Observer,
                "query-metrics",
                Coordination::FanOut
            ),
            (
                "s1/investigate/b1/1",
                AgentType::Observer,
                "search-logs",
                Coordination::FanOut
            ),
            (
                "s1/investigate/b2/1",
                AgentType::Analyst,
                "sample-traces",
                Coordination::FanOut
            ),
        ]
    );
    assert!(branches.iter().all(|c| c.deadline == T0 + 10 + 5000));
    // One join deadline for the crew, not one timer per branch.
    assert_eq!(s.timer.map(|t| t.due_ms), Some(T0 + 10 + 5000));
    for (i, c) in branches.iter().enumerate().take(2) {
        let fx = e.on_result(&mut s, &ok(c, T0 + 20 + i as i64), T0 + 20 + i as i64);
        assert_eq!(fx.commands().count(), 0, "the join waits for the third");
    }
    // A result from the wrong agent type for branch 2 is rejected; the right one closes the join.
    let mut wrong = ok(&branches[2], T0 + 30);
    wrong.agent_type = AgentType::Observer;
    assert!(matches!(
        e.on_result(&mut s, &wrong, T0 + 30).ignored,
        Some(Ignored::Rejected { .. })
    ));
    let fx = e.on_result(&mut s, &ok(&branches[2], T0 + 31), T0 + 31);
    assert_eq!(only_command(&fx).step, "report");
    assert_eq!(fx.cancels().count(), 0, "nothing left to cancel");
    // Every branch is on the done list, for compensation, then the step itself.
    let done: Vec<(&str, Option<u8>)> =
        s.done.iter().map(|d| (d.step.as_str(), d.branch)).collect();
    assert_eq!(
        done,
        [
            ("prepare", None),
            ("investigate", Some(0)),
            ("investigate", Some(1)),
            ("investigate", Some(2)),
            ("investigate", None)
        ]
    );
    // A branch's result delivered again is a duplicate.
    assert_eq!(
        e.on_result(&mut s, &ok(&branches[0], T0 + 40), T0 + 40)
            .ignored,
        Some(Ignored::Duplicate)
    );
}

#[test]
fn a_fan_out_all_with_one_failed_branch_compensates_the_succeeded_ones_newest_first() {
    let e = engine(CREW);
    let (mut s, branches) = crew_started(&e);
    e.on_result(&mut s, &ok(&branches[1], T0 + 20), T0 + 20);
    e.on_result(&mut s, &ok(&branches[0], T0 + 21), T0 + 21);
    let fx = e.on_result(&mut s, &failed(&branches[2], T0 + 22), T0 + 22);
    assert_eq!(s.status, SagaStatus::Compensating);
    assert!(kinds(&fx).iter().any(|k| k.0 == K::Compensating));
    // Newest first: branch 0 succeeded last, so it is undone first, then branch 1, then prepare.
    let mut undone = Vec::new();
    let mut comp = only_compensation(&fx);
    loop {
        undone.push((
            comp.command_id.clone(),
            comp.compensates_command_id.clone(),
            comp.agent_type,
        ));
        let fx = e.on_result(
            &mut s,
            &comp_result(&comp, ResultStatus::Succeeded, T0 + 30),
            T0 + 30,
        );
        let next = fx.compensations().next().cloned();
        match next {
            Some(next) => comp = next,
            None => break,
        }
    }
    assert_eq!(
        undone,
        [
            (
                "s1/investigate/b0/undo/1".into(),
                "s1/investigate/b0/1".into(),
                AgentType::Observer
            ),
            (
                "s1/investigate/b1/undo/1".into(),
                "s1/investigate/b1/1".into(),
                AgentType::Observer
            ),
            (
                "s1/prepare/undo/1".into(),
                "s1/prepare/1".into(),
                AgentType::Observer
            ),
        ]
    );
    assert_eq!(s.status, SagaStatus::Compensated);
    assert!(s
        .failure
        .as_ref()
        .unwrap()
        .reason
        .contains("join needs 3 of 3"));
}

#[test]
fn a_fan_out_quorum_of_2_completes_on_two_and_cancels_the_third() {
    let e = engine(&CREW.replace("join = \"all\"", "join = \"quorum(2)\""));
    let (mut s, branches) = crew_started(&e);
    e.on_result(&mut s, &ok(&branches[2], T0 + 20), T0 + 20);
    let fx = e.on_result(&mut s, &ok(&branches[0], T0 + 21), T0 + 21);
    let cancels: Vec<_> = fx.cancels().collect();
    assert_eq!(cancels.len(), 1);
    let c = cancels[0];
    assert_eq!(
        (
            c.command_id.as_str(),
            c.compensates_command_id.as_str(),
            c.action.as_str(),
            c.agent_type
        ),
        (
            "s1/investigate/b1/cancel/1",
            "s1/investigate/b1/1",
            "cancel",
            AgentType::Observer
        )
    );
    assert!(c.reason.contains("join met: 2 of 3"), "{}", c.reason);
    assert_eq!(only_command(&fx).step, "report", "the saga moves on");
    // The cancelled branch answering after all is late, and changes nothing.
    let before = s.clone();
    assert_eq!(
        e.on_result(&mut s, &ok(&branches[1], T0 + 22), T0 + 22)
            .ignored,
        Some(Ignored::Late)
    );
    assert_eq!(s, before);
}

#[test]
fn a_fan_out_deadline_cancels_the_silent_branches_and_fails_the_step() {
    let e = engine(CREW);
    let (mut s, branches) = crew_started(&e);
    e.on_result(&mut s, &ok(&branches[0], T0 + 20), T0 + 20);
    let t = s.timer().unwrap();
    let fx = e.on_timer(&mut s, &t, t.due_ms);
    assert_eq!(fx.cancels().count(), 2);
    assert_eq!(s.status, SagaStatus::Compensating);
    assert_eq!(
        only_compensation(&fx).compensates_command_id,
        "s1/investigate/b0/1"
    );
}

#[test]
fn a_failed_branch_is_reissued_while_the_step_has_attempts() {
    let text = CREW.replace("max_attempts = 1 }", "max_attempts = 2 }");
    let e = engine(&text);
    let (mut s, branches) = crew_started(&e);
    let fx = e.on_result(&mut s, &failed(&branches[1], T0 + 20), T0 + 20);
    let again = only_command(&fx);
    assert_eq!(again.command_id, "s1/investigate/b1/2");
    assert_eq!(again.deadline, T0 + 10 + 5000, "still the join deadline");
    assert_eq!(
        e.on_result(&mut s, &ok(&branches[1], T0 + 21), T0 + 21)
            .ignored,
        Some(Ignored::Late)
    );
    e.on_result(&mut s, &ok(&branches[0], T0 + 22), T0 + 22);
    e.on_result(&mut s, &ok(&again, T0 + 23), T0 + 23);
    let fx = e.on_result(&mut s, &ok(&branches[2], T0 + 24), T0 + 24);
    assert_eq!(only_command(&fx).step, "report");
}

fn plan_of(n: usize) -> String {
    let types = ["OBSERVER", "ANALYST", "SUPERVISOR"];
    (0..n)
        .map(|i| format!("{}:task-{i}", types[i % 3]))
        .collect::<Vec<_>>()
        .join(";")
}

#[test]
fn a_supervisor_plan_of_5_sub_tasks_fans_out_joins_and_goes_back_to_the_supervisor() {
    let e = engine(PLAN);
    let (mut s, fx) = start(&e, "plan");
    let plan = only_command(&fx);
    assert_eq!(
        (plan.agent_type, plan.coordination),
        (AgentType::Supervisor, Coordination::Hierarchical)
    );
    let out = plan_of(5);
    let fx = e.on_result(
        &mut s,
        &result(&plan, ResultStatus::Succeeded, &[("plan", &out)], T0 + 10),
        T0 + 10,
    );
    let tasks = commands(&fx);
    let got: Vec<(String, AgentType, String)> = tasks
        .iter()
        .map(|c| (c.command_id.clone(), c.agent_type, c.action.clone()))
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0],
        ("s1/plan/b0/1".into(), AgentType::Observer, "task-0".into())
    );
    assert_eq!(
        got[4],
        ("s1/plan/b4/1".into(), AgentType::Analyst, "task-4".into())
    );
    // The plan's result again: a duplicate, not a second fan-out.
    let dup = result(&plan, ResultStatus::Succeeded, &[("plan", &out)], T0 + 11);
    assert_eq!(
        e.on_result(&mut s, &dup, T0 + 11).ignored,
        Some(Ignored::Duplicate)
    );
    let view = saga_view(&s);
    assert_eq!(view["current"]["stage"], "work");
    assert_eq!(view["current"]["branches"].as_array().unwrap().len(), 5);
    for (i, c) in tasks.iter().enumerate() {
        let fx = e.on_result(&mut s, &ok(c, T0 + 20 + i as i64), T0 + 20 + i as i64);
        if i < 4 {
            assert_eq!(fx.commands().count(), 0);
        } else {
            let review = only_command(&fx);
            assert_eq!(
                (
                    review.command_id.as_str(),
                    review.agent_type,
                    review.action.as_str()
                ),
                (
                    "s1/plan/final/1",
                    AgentType::Supervisor,
                    "review-remediation"
                )
            );
            let fx = e.on_result(&mut s, &ok(&review, T0 + 40), T0 + 40);
            assert_eq!(only_command(&fx).step, "verify");
        }
    }
}

#[test]
fn a_plan_over_its_bound_fails_the_planning_attempt() {
    let e = engine(PLAN);
    let (mut s, fx) = start(&e, "plan");
    let plan = only_command(&fx);
    let out = plan_of(6);
    let fx = e.on_result(
        &mut s,
        &result(&plan, ResultStatus::Succeeded, &[("plan", &out)], T0 + 10),
        T0 + 10,
    );
    assert_eq!(fx.commands().count(), 0);
    let failed_ev = fx.events().find(|e| e.kind == K::StepFailed).unwrap();
    assert!(failed_ev
        .reason
        .as_ref()
        .unwrap()
        .contains("more than max_subtasks 5"));
    assert_eq!(timer_of(&fx).kind, TimerKind::Retry);
}

#[test]
fn a_bounded_loop_repeats_with_fresh_command_ids_then_takes_the_next_edge() {
    let e = engine(LOOP);
    let (mut s, fx) = start(&e, "retry-loop");
    let mut remediate = only_command(&fx);
    let mut ids = vec![remediate.command_id.clone()];
    for _ in 0..3 {
        let fx = e.on_result(&mut s, &ok(&remediate, T0 + 10), T0 + 10);
        let verify = only_command(&fx);
        ids.push(verify.command_id.clone());
        let no = result(
            &verify,
            ResultStatus::Succeeded,
            &[("verified", "false")],
            T0 + 20,
        );
        let next = only_command(&e.on_result(&mut s, &no, T0 + 20));
        ids.push(next.command_id.clone());
        remediate = next;
    }
    assert_eq!(
        ids,
        [
            "s1/remediate/1",
            "s1/verify/1",
            "s1/remediate/2",
            "s1/verify/2",
            "s1/remediate/3",
            "s1/verify/3",
            "s1/give-up/1"
        ]
    );
    assert_eq!(s.loops.get("verify>remediate"), Some(&2));
}

#[test]
fn a_restart_mid_fan_out_keeps_the_branches_and_joins_once() {
    let e = engine(&CREW.replace("join = \"all\"", "join = \"quorum(2)\""));
    let mut store = SagaStore::new();
    let mut req = start_req("s1", "an-1");
    req.workflow = "crew".into();
    let fx = store.start_or_join(&e, req, T0).unwrap();
    let fx = store.on_result(&e, &ok(&only_command(&fx), T0 + 10), T0 + 10);
    let branches = commands(&fx);
    store.on_result(&e, &ok(&branches[0], T0 + 20), T0 + 20);
    let record = store.record("s1").unwrap().to_vec();
    drop(store);
    let mut restored = SagaStore::new();
    restored.insert_record(&record).unwrap();
    assert_eq!(
        restored
            .on_result(&e, &ok(&branches[0], T0 + 30), T0 + 30)
            .ignored,
        Some(Ignored::Duplicate)
    );
    let fx = restored.on_result(&e, &ok(&branches[2], T0 + 31), T0 + 31);
    assert_eq!(
        (fx.cancels().count(), only_command(&fx).step.as_str()),
        (1, "report")
    );
    let s = restored.get("s1").unwrap();
    assert_eq!(
        s.done
            .iter()
            .filter(|d| d.step == "investigate" && d.branch.is_none())
            .count(),
        1
    );
}
