//! Saga failures on the real broker: a step that always fails is retried as its policy says and
//! then the completed steps are compensated newest first; an agent that never answers makes the
//! step time out and retry; and ten thousand sagas complete against agents that fail 5% of
//! commands.
//!
//! Every saga runs the `triage` workflow of `tests/workflows/<test>/` (its README says how
//! routing is made to pick it). Expectations are read from those files, never repeated here.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{CompensationCommand, SagaEvent, SagaEventKind};
use aura::saga::{OnFailure, RetryPolicy, StepSpec, WorkflowSpec, Workflows};
use common::*;
use rdkafka::message::Message;

/// Saga events by saga id, each saga's in the order they were published.
type Histories = BTreeMap<String, Vec<SagaEvent>>;

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

fn start_agents(topics: &TestTopics, dir: &std::path::Path, chaos: &[&str]) -> Service {
    let (bootstrap, registry) = (bootstrap(), registry());
    let group = format!("{}-agents", topics.group);
    let mut args = vec![
        "agents",
        "--bootstrap-servers",
        &bootstrap,
        "--schema-registry-url",
        &registry,
        "--commands-topic",
        &topics.commands,
        "--compensations-topic",
        &topics.compensations,
        "--results-topic",
        &topics.results,
        "--group-id",
        &group,
    ];
    args.extend_from_slice(chaos);
    Service::spawn(&args, "agents", dir)
}

fn is_terminal(kind: SagaEventKind) -> bool {
    matches!(
        kind,
        SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
    )
}

/// Follows the saga topic (read_committed) until at least `sagas` sagas started and every one
/// of them ended, then until nothing new arrives for `quiet`, so a duplicate or a late event
/// still shows; or until `timeout`, leaving the assertions to say what is missing.
async fn saga_histories(
    topic: &str,
    sagas: usize,
    quiet: Duration,
    timeout: Duration,
) -> Histories {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let consumer = committed_consumer(topic);
    let deadline = Instant::now() + timeout;
    let mut last_record = Instant::now();
    let (mut started, mut ended) = (HashSet::new(), HashSet::new());
    let mut histories = Histories::new();
    while Instant::now() < deadline {
        let all_ended = started.len() >= sagas && ended.len() == started.len();
        if all_ended && last_record.elapsed() > quiet {
            break;
        }
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last_record = Instant::now();
        let event: SagaEvent = codec.decode(m.payload().unwrap()).await.unwrap();
        if event.kind == SagaEventKind::Started {
            started.insert(event.saga_id.clone());
        } else if is_terminal(event.kind) {
            ended.insert(event.saga_id.clone());
        }
        histories
            .entry(event.saga_id.clone())
            .or_default()
            .push(event);
    }
    histories
}

/// Compensation commands by saga id, in the order they were issued.
async fn compensations(topic: &str, min: usize) -> BTreeMap<String, Vec<CompensationCommand>> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let records = read_until_idle(topic, min, Duration::from_secs(2), Duration::from_secs(30));
    let mut by_saga: BTreeMap<String, Vec<CompensationCommand>> = BTreeMap::new();
    for r in records {
        let c: CompensationCommand = codec.decode(&r.value).await.unwrap();
        by_saga.entry(c.saga_id.clone()).or_default().push(c);
    }
    by_saga
}

/// Events seen more than once: the same kind, step, attempt and command of the same saga.
fn duplicates(histories: &Histories) -> usize {
    let mut seen = HashSet::new();
    let all = histories.values().flatten();
    all.filter(|e| !seen.insert((&e.saga_id, e.kind, &e.step, e.attempt, &e.command_id)))
        .count()
}

/// The narrowest range the policy allows for the wait after attempt `failed` fails:
/// `min(initial * multiplier^(failed-1), max)` spread by ±jitter, and never above `max`.
fn backoff_band(policy: &RetryPolicy, failed: i32) -> (i64, i64) {
    let max = policy.max_interval_ms as f64;
    let base = (policy.initial_interval_ms as f64 * policy.multiplier.powi(failed - 1)).min(max);
    let lo = (base * (1.0 - policy.jitter)).floor().max(1.0);
    let hi = (base * (1.0 + policy.jitter)).min(max).ceil();
    (lo as i64, hi as i64)
}

fn of<'a>(h: &'a [SagaEvent], kind: SagaEventKind, step: &str) -> Vec<&'a SagaEvent> {
    let step = Some(step);
    h.iter()
        .filter(|e| e.kind == kind && e.step.as_deref() == step)
        .collect()
}

/// One saga whose step `failing` never succeeds: the steps before it succeed once each in
/// workflow order, every attempt of `failing` starts and ends with `attempt_end` (STEP_FAILED
/// or STEP_TIMED_OUT, no sooner than the timeout for the latter), each retry waits the policy's
/// backoff, and the saga then ends as the workflow declares. Returns the completed steps.
fn check_exhausted_step<'w>(
    h: &[SagaEvent],
    wf: &'w WorkflowSpec,
    failing: &StepSpec,
    attempt_end: SagaEventKind,
) -> Vec<&'w StepSpec> {
    let saga = &h[0].saga_id;
    let before: Vec<&StepSpec> = wf
        .steps
        .iter()
        .take_while(|s| s.name != failing.name)
        .collect();
    let succeeded: Vec<&str> = h
        .iter()
        .filter(|e| e.kind == SagaEventKind::StepSucceeded)
        .filter_map(|e| e.step.as_deref())
        .collect();
    let names: Vec<&str> = before.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(succeeded, names, "{saga}: completed steps, in order");

    let max = failing.retry.max_attempts;
    let attempts = |kind| {
        of(h, kind, &failing.name)
            .iter()
            .map(|e| e.attempt)
            .collect::<Vec<_>>()
    };
    let all: Vec<i32> = (1..=max).collect();
    assert_eq!(
        attempts(SagaEventKind::StepStarted),
        all,
        "{saga}: attempts started"
    );
    assert_eq!(
        attempts(attempt_end),
        all,
        "{saga}: attempts that ended {attempt_end:?}"
    );
    assert_eq!(
        attempts(SagaEventKind::RetryScheduled),
        all[1..],
        "{saga}: retries"
    );

    let starts = of(h, SagaEventKind::StepStarted, &failing.name);
    let ends = of(h, attempt_end, &failing.name);
    let retries = of(h, SagaEventKind::RetryScheduled, &failing.name);
    for n in 1..=max as usize {
        let (start, end) = (starts[n - 1], ends[n - 1]);
        if attempt_end == SagaEventKind::StepTimedOut {
            let waited = end.at - start.at;
            assert!(
                waited >= failing.timeout_ms,
                "{saga}: attempt {n} timed out after {waited} ms, its timeout is {} ms",
                failing.timeout_ms
            );
        }
        if n == max as usize {
            break;
        }
        let (lo, hi) = backoff_band(&failing.retry, n as i32);
        let retry_at = retries[n - 1]
            .retry_at
            .expect("RETRY_SCHEDULED has retry_at");
        let scheduled = retry_at - end.at;
        assert!(
            (lo..=hi).contains(&scheduled),
            "{saga}: retry after attempt {n} scheduled {scheduled} ms out, policy allows {lo}..={hi}"
        );
        let next = starts[n];
        assert!(
            next.at >= retry_at,
            "{saga}: attempt {} started at {}, before its retry was due at {retry_at}",
            n + 1,
            next.at
        );
    }

    // After the last attempt, nothing but the way out the workflow declares.
    let last_attempt = h.iter().rposition(|e| e.kind == attempt_end).unwrap();
    let tail: Vec<SagaEventKind> = h[last_attempt + 1..].iter().map(|e| e.kind).collect();
    let declared = match wf.on_failure {
        OnFailure::Compensate => vec![SagaEventKind::Compensating, SagaEventKind::Compensated],
        OnFailure::Fail => vec![SagaEventKind::Failed],
    };
    assert_eq!(
        tail, declared,
        "{saga}: after the last attempt; events {h:#?}"
    );
    let terminal = h.iter().filter(|e| is_terminal(e.kind)).count();
    assert_eq!(terminal, 1, "{saga}: one terminal event");
    before
}

/// The compensations of one saga undo its completed steps newest first, each pointing at the
/// command it undoes, between COMPENSATING and the end.
fn check_compensations(h: &[SagaEvent], completed: &[&StepSpec], issued: &[CompensationCommand]) {
    let saga = &h[0].saga_id;
    let expected: Vec<(&str, &str)> = completed
        .iter()
        .rev()
        .filter_map(|s| Some((s.name.as_str(), s.compensation.as_ref()?.action.as_str())))
        .collect();
    let got: Vec<(&str, &str)> = issued
        .iter()
        .map(|c| (c.step.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(got, expected, "{saga}: compensations, newest step first");
    let compensating = h.iter().find(|e| e.kind == SagaEventKind::Compensating);
    let compensating = compensating.unwrap_or_else(|| panic!("{saga}: no COMPENSATING"));
    let end = h.last().unwrap();
    for c in issued {
        let done = of(h, SagaEventKind::StepSucceeded, &c.step);
        assert_eq!(Some(&c.compensates_command_id), done[0].command_id.as_ref());
        assert!(
            (compensating.at..=end.at).contains(&c.issued_at),
            "{saga}: {c:?}"
        );
    }
    let times: Vec<i64> = issued.iter().map(|c| c.issued_at).collect();
    assert!(
        times.is_sorted(),
        "{saga}: issued one after another: {times:?}"
    );
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
        let agents = start_agents(&topics, dir.path(), chaos);
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
        let tail = |t: String| t[t.len().saturating_sub(4000)..].to_string();
        format!(
            "service log (tail):\n{}\nagents log (tail):\n{}",
            tail(self.service.log_text()),
            tail(self.agents.log_text())
        )
    }
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
    let chaos = [
        "--latency-ms",
        "1..10",
        "--failure-rate",
        "0",
        "--fail-actions",
        "apply-remediation",
    ];
    let run = Run::start("failing-step", 5, &chaos).await;
    let histories = saga_histories(
        &run.topics.sagas,
        5,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "5 sagas with a failing step ended in {:?}",
        run.started.elapsed()
    );
    assert_eq!(histories.len(), 5, "{}", run.logs());
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

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_agent_times_out_and_its_step_is_retried_by_its_policy() {
    let wf = triage("silent-agent");
    let silent = step_with_action(&wf, "classify-anomaly");
    let chaos = [
        "--latency-ms",
        "1..10",
        "--failure-rate",
        "0",
        "--silent-actions",
        "classify-anomaly",
    ];
    let run = Run::start("silent-agent", 5, &chaos).await;
    let histories = saga_histories(
        &run.topics.sagas,
        5,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "5 sagas with a silent agent ended in {:?}",
        run.started.elapsed()
    );
    assert_eq!(histories.len(), 5, "{}", run.logs());
    for h in histories.values() {
        let completed = check_exhausted_step(h, &wf, silent, SagaEventKind::StepTimedOut);
        assert!(of(h, SagaEventKind::StepFailed, &silent.name).is_empty());
        if wf.on_failure == OnFailure::Compensate {
            let issued = compensations(&run.topics.compensations, 1).await;
            check_compensations(h, &completed, &issued[&h[0].saga_id]);
        }
    }
    if wf.on_failure == OnFailure::Fail {
        let issued = compensations(&run.topics.compensations, 0).await;
        assert!(
            issued.is_empty(),
            "on_failure = fail undoes nothing: {issued:?}"
        );
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
        Duration::from_secs(150),
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
    let ratio = completed as f64 / histories.len().max(1) as f64;
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
