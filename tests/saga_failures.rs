//! Saga failures on the real broker: a step that always fails is retried as its policy says and
//! then the completed steps are compensated newest first; an agent that never answers makes the
//! step time out and retry; and ten thousand sagas complete against agents that fail 5% of
//! commands.
//!
//! Every saga runs the `triage` workflow of `tests/workflows/<test>/` (its README says how
//! routing is made to pick it). Expectations are read from those files, never repeated here.

mod common;
// Not `tests/history.rs`: Cargo would build that as a test of its own.
#[path = "saga_failures/history.rs"]
mod history;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aura::model::{Layer, SagaEventKind};
use aura::saga::{OnFailure, StepSpec, WorkflowSpec, Workflows};
use common::*;
use history::*;

fn workflows_dir(test: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workflows")
        .join(test)
}

/// The workflow every saga of `test` runs, loaded (and so validated) as the service loads it.
fn triage(test: &str) -> Arc<WorkflowSpec> {
    let workflows = Workflows::load_dir(workflows_dir(test)).unwrap();
    workflows.get("triage").unwrap().clone()
}

/// `[sagas]` on `test`'s workflows, with a matcher radius so small that no anomaly matches a
/// pattern: routing then sends every anomaly to `triage`.
fn sagas_on(test: &str) -> String {
    let dir = workflows_dir(test).display().to_string();
    format!(
        "[sagas]\nenabled = true\nworkflows = {dir:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n"
    )
}

/// A service and simulated agents on fresh topics, running `test`'s workflow.
struct Run {
    topics: TestTopics,
    service: Service,
    agents: Service,
    started: Instant,
    _dir: tempfile::TempDir,
}

impl Run {
    /// Publishes `sagas` anomalies, each its own incident and so its own saga, then starts the
    /// service and agents with `chaos` flags.
    async fn start(test: &str, sagas: u64, chaos: &[&str]) -> Self {
        let topics = TestTopics::new(test);
        create_topic(&topics.anomalies, 3).await;
        let dir = tempfile::tempdir().unwrap();
        let config = topics.write_config_with(dir.path(), "exactly_once_v2", &sagas_on(test));
        // Sources drawn from 10^15, so no two anomalies share an incident.
        produce_anomalies_from(&topics.anomalies, sagas, 1_000_000_000_000_000, 53).await;
        let started = Instant::now();
        let service = Service::start(&config, test, dir.path());
        let agents = start_agents_with(&topics, dir.path(), chaos);
        Self {
            topics,
            service,
            agents,
            started,
            _dir: dir,
        }
    }

    /// The last part of both logs, for a failed assertion.
    fn logs(&self) -> String {
        let tail = |t: String| {
            let from = t.len().saturating_sub(4000);
            let from = (from..t.len()).find(|i| t.is_char_boundary(*i));
            t[from.unwrap_or(t.len())..].to_string()
        };
        format!(
            "service log (tail):\n{}\nagents log (tail):\n{}",
            tail(self.service.log_text()),
            tail(self.agents.log_text())
        )
    }
}

/// Runs five sagas of `test`'s workflow against quick agents that apply `chaos` (a flag such as
/// `--fail-actions`) to `action` and succeed otherwise; returns once every saga has ended.
async fn five_sagas(test: &str, chaos: &str, action: &str) -> (Run, Histories) {
    let behaviour = [
        "--latency-ms",
        "1..10",
        "--failure-rate",
        "0",
        chaos,
        action,
    ];
    let run = Run::start(test, 5, &behaviour).await;
    let histories = saga_histories(
        &run.topics.sagas,
        5,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "5 sagas ({chaos} {action}) ended in {:?}",
        run.started.elapsed()
    );
    assert_eq!(histories.len(), 5, "{}", run.logs());
    (run, histories)
}

/// The one step of `wf` whose action is `action`.
fn step_with_action<'w>(wf: &'w WorkflowSpec, action: &str) -> &'w StepSpec {
    wf.steps.iter().find(|s| s.action == action).unwrap()
}

/// Every test folder passes the checks `aura topology check` and the service apply; this needs
/// no broker, so a broken file shows before any broker test starts.
#[test]
fn every_test_workflow_folder_loads() {
    let root = workflows_dir("");
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            let workflows = Workflows::load_dir(&path).unwrap();
            assert!(workflows.get("triage").is_some(), "{}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_is_retried_by_its_policy_then_completed_steps_are_compensated() {
    let wf = triage("failing-step");
    let failing = step_with_action(&wf, "apply-remediation");
    let (run, histories) = five_sagas("failing-step", "--fail-actions", &failing.action).await;
    let expected = histories.len() * 2;
    let issued = compensations(&run.topics.compensations, expected).await;
    for (saga, h) in &histories {
        let completed = check_exhausted_step(h, &wf, failing, SagaEventKind::StepFailed);
        let issued = issued.get(saga).map(Vec::as_slice).unwrap_or_default();
        check_compensations(h, &completed, issued);
    }
    assert_eq!(duplicates(&histories), 0);
    assert!(run.service.stop().success());
}

/// A compensation that keeps failing is retried, then reported (COMPENSATION_FAILED) and
/// escalated one layer up, and the saga ends FAILED: never dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_compensation_that_keeps_failing_is_reported_and_escalated() {
    let wf = triage("failing-step");
    let failing = step_with_action(&wf, "apply-remediation");
    // The newest completed step, so the first compensation; it never succeeds.
    let stuck = wf
        .steps
        .iter()
        .take_while(|s| s.name != failing.name)
        .last()
        .unwrap();
    let undo = stuck.compensation.as_ref().unwrap();
    let both = format!("{},{}", failing.action, undo.action);
    let (run, histories) = five_sagas("failing-step", "--fail-actions", &both).await;
    let tries = undo.max_attempts.unwrap_or(stuck.retry.max_attempts);
    let issued = compensations(&run.topics.compensations, histories.len() * tries as usize).await;
    let escalated = escalations(&run.topics.escalations, histories.len()).await;
    for (saga, h) in &histories {
        let kinds: Vec<SagaEventKind> = h.iter().map(|e| e.kind).collect();
        let tail = &kinds[kinds.len() - 2..];
        assert_eq!(
            tail,
            [SagaEventKind::CompensationFailed, SagaEventKind::Failed],
            "{saga}: {h:#?}"
        );
        let reported = of(h, SagaEventKind::CompensationFailed, &stuck.name);
        assert_eq!(reported.len(), 1, "{saga}: one report, for {}", stuck.name);
        // Every attempt of the stuck compensation was issued, and nothing after it.
        let attempts: Vec<(&str, i32)> = issued[saga]
            .iter()
            .map(|c| (c.action.as_str(), c.attempt))
            .collect();
        let expected: Vec<(&str, i32)> = (1..=tries).map(|a| (undo.action.as_str(), a)).collect();
        assert_eq!(attempts, expected, "{saga}: compensation attempts");
        let up = &escalated[saga];
        assert_eq!(up.len(), 1, "{saga}: one escalation");
        assert_eq!(up[0].step.as_deref(), Some(stuck.name.as_str()));
        assert!(
            up[0].to_layer > up[0].from_layer || up[0].from_layer == Layer::Strategic,
            "{saga}: escalated one layer up: {:?}",
            up[0]
        );
    }
    assert_eq!(duplicates(&histories), 0);
    assert!(run.service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_agent_times_out_and_its_step_is_retried_by_its_policy() {
    let wf = triage("silent-agent");
    let silent = step_with_action(&wf, "classify-anomaly");
    let (run, histories) = five_sagas("silent-agent", "--silent-actions", &silent.action).await;
    let issued = compensations(&run.topics.compensations, 0).await;
    for (saga, h) in &histories {
        let completed = check_exhausted_step(h, &wf, silent, SagaEventKind::StepTimedOut);
        assert!(of(h, SagaEventKind::StepFailed, &silent.name).is_empty());
        let issued = issued.get(saga).map(Vec::as_slice).unwrap_or_default();
        match wf.on_failure {
            OnFailure::Compensate => check_compensations(h, &completed, issued),
            OnFailure::Fail => assert!(issued.is_empty(), "fail undoes nothing: {issued:?}"),
        }
    }
    assert_eq!(duplicates(&histories), 0);
    assert!(run.service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_sagas_complete_against_agents_that_fail_five_percent() {
    const SAGAS: usize = 10_000;
    let wf = triage("completion");
    assert!(
        wf.steps.iter().all(|s| s.retry.max_attempts == 3),
        "three attempts per step"
    );
    let chaos = ["--latency-ms", "0..5", "--failure-rate", "0.05"];
    let run = Run::start("completion", SAGAS as u64, &chaos).await;
    let histories = saga_histories(
        &run.topics.sagas,
        SAGAS,
        Duration::from_secs(3),
        // A cap, not a speed target: the read ends as soon as every saga has ended. A shared
        // 2-core machine under load takes minutes for 10,000 sagas in a debug build.
        Duration::from_secs(480),
    )
    .await;
    let elapsed = run.started.elapsed();
    // The engine's own clock: from the first saga's start to the last saga's end.
    let at = |kind: fn(SagaEventKind) -> bool| {
        histories
            .values()
            .flatten()
            .filter(move |e| kind(e.kind))
            .map(|e| e.at)
    };
    let first = at(|k| k == SagaEventKind::Started)
        .min()
        .unwrap_or_default();
    let span = at(is_terminal).max().unwrap_or_default() - first;
    let ends: Vec<SagaEventKind> = histories.values().map(|h| h.last().unwrap().kind).collect();
    let completed = ends
        .iter()
        .filter(|k| **k == SagaEventKind::Completed)
        .count();
    let terminal = ends.iter().filter(|k| is_terminal(**k)).count();
    let retried = histories
        .values()
        .filter(|h| h.iter().any(|e| e.kind == SagaEventKind::RetryScheduled))
        .count();
    let ratio = completed as f64 / SAGAS as f64;
    eprintln!(
        "{} sagas: {completed} completed ({:.4}%), {terminal} terminal, {retried} needed a retry; \
         {span} ms from the first start to the last end, {:?} from starting the service to \
         the end of the quiet read",
        histories.len(),
        ratio * 100.0,
        elapsed
    );
    assert_eq!(
        histories.len(),
        SAGAS,
        "one saga per anomaly; {}",
        run.logs()
    );
    assert_eq!(terminal, SAGAS, "every saga ends; {}", run.logs());
    assert!(ratio >= 0.999, "completed {completed} of {SAGAS}");
    assert!(
        retried > SAGAS / 100,
        "5% failures made sagas retry: {retried}"
    );
    assert_eq!(
        duplicates(&histories),
        0,
        "read_committed sees each event once"
    );
    assert!(run.service.stop().success());
}
