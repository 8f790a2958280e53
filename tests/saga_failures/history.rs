//! A saga's history as the broker holds it, and what it must show: read with read_committed
//! from the saga and compensation topics, checked against the workflow the saga ran.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{CompensationCommand, Escalation, SagaEvent, SagaEventKind};
use aura::saga::{OnFailure, RetryPolicy, StepSpec, WorkflowSpec};
use rdkafka::message::Message;

use crate::common::{committed_reader, decode_topic, registry};

/// Saga events by saga id, each saga's in the order they were published.
pub type Histories = BTreeMap<String, Vec<SagaEvent>>;

pub fn is_terminal(kind: SagaEventKind) -> bool {
    matches!(
        kind,
        SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
    )
}

/// Follows the saga topic (read_committed) until at least `sagas` sagas started and every one
/// of them ended, then until nothing new arrives for `quiet`, so a duplicate or a late event
/// still shows; or until `timeout`, leaving the assertions to say what is missing.
pub async fn saga_histories(
    topic: &str,
    sagas: usize,
    quiet: Duration,
    timeout: Duration,
) -> Histories {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let consumer = committed_reader(topic);
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
pub async fn compensations(topic: &str, min: usize) -> BTreeMap<String, Vec<CompensationCommand>> {
    by_saga(decode_topic(topic, min).await, |c: &CompensationCommand| {
        &c.saga_id
    })
}

/// Escalations by saga, read_committed, once at least `min` have come and the topic is quiet.
pub async fn escalations(topic: &str, min: usize) -> BTreeMap<String, Vec<Escalation>> {
    by_saga(decode_topic(topic, min).await, |e: &Escalation| &e.saga_id)
}

/// `records` grouped by saga id, in their order.
fn by_saga<T>(records: Vec<T>, saga_id: impl Fn(&T) -> &String) -> BTreeMap<String, Vec<T>> {
    let mut grouped: BTreeMap<String, Vec<T>> = BTreeMap::new();
    for r in records {
        grouped.entry(saga_id(&r).clone()).or_default().push(r);
    }
    grouped
}

/// Events seen more than once: the same kind, step, attempt and command of the same saga.
pub fn duplicates(histories: &Histories) -> usize {
    let mut seen = HashSet::new();
    let all = histories.values().flatten();
    all.filter(|e| !seen.insert((&e.saga_id, e.kind, &e.step, e.attempt, &e.command_id)))
        .count()
}

/// The narrowest range the policy allows for the wait after attempt `failed` fails:
/// `min(initial * multiplier^(failed-1), max)` spread by ±jitter, and never above `max`.
pub fn backoff_band(policy: &RetryPolicy, failed: i32) -> (i64, i64) {
    let max = policy.max_interval_ms as f64;
    let base = (policy.initial_interval_ms as f64 * policy.multiplier.powi(failed - 1)).min(max);
    let lo = (base * (1.0 - policy.jitter)).floor().max(1.0);
    let hi = (base * (1.0 + policy.jitter)).min(max).ceil();
    (lo as i64, hi as i64)
}

/// The events of one kind about one step, in order.
pub fn of<'a>(h: &'a [SagaEvent], kind: SagaEventKind, step: &str) -> Vec<&'a SagaEvent> {
    let step = Some(step);
    h.iter()
        .filter(|e| e.kind == kind && e.step.as_deref() == step)
        .collect()
}

/// One saga whose step `failing` never succeeds: the steps before it succeed once each in
/// workflow order, every attempt of `failing` starts and ends with `attempt_end` (STEP_FAILED
/// or STEP_TIMED_OUT, no sooner than the timeout for the latter), each retry waits the policy's
/// backoff, and the saga then ends as the workflow declares. Returns the completed steps.
pub fn check_exhausted_step<'w>(
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
pub fn check_compensations(
    h: &[SagaEvent],
    completed: &[&StepSpec],
    issued: &[CompensationCommand],
) {
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
