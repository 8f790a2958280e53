//! Completion on the real broker (ignored: minutes of broker time, run on demand):
//!
//!   cargo test --test coordination_completion -- --ignored --nocapture
//!
//! 10,000 incidents of the four archetypes whose workflows hold coordination steps
//! (`cascading-failure` → `cascade-containment`, a consensus; `network-partition` →
//! `partition-recovery`, a crew; `config-regression` → `change-rollback`, a supervisor;
//! `resource-contention` → `contention-relief`, a bounded loop), one saga each, against
//! `aura agents` with 5% of answers FAILED, 5% never sent and 20% of voters disagreeing. At least
//! 99.9% of the sagas must end (completed, compensated, or failed as their workflow declares),
//! read back under read_committed.
//!
//! The shipped workflows run with every duration (`*_ms`) divided by `AURA_COMPLETION_TIME_SCALE`
//! (default 10), so silent agents' timeouts and backoffs take seconds, not minutes; their steps,
//! edges, joins, quorums and retry counts are the shipped ones. Incidents arrive at
//! `AURA_COMPLETION_RATE` per second (default 50, about what one debug-built instance on a shared
//! two-core machine keeps up with: a backlog would time steps out and compensate them instead).
//! `AURA_COMPLETION_SAGAS` changes the count (default 10,000).

mod common;
#[allow(dead_code)]
#[path = "saga_failures/history.rs"]
mod history;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::generator::Generator;
use aura::model::SagaEventKind as K;
use common::*;
use history::*;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

const ARCHETYPES: [&str; 4] = [
    "cascading-failure",
    "network-partition",
    "config-regression",
    "resource-contention",
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `text` with every `<name>_ms = <n>` divided by `scale` (at least 1 ms).
fn scale_durations(text: &str, scale: u64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("_ms = ") {
        let (head, tail) = rest.split_at(at + "_ms = ".len());
        out.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        match tail[..digits].parse::<u64>() {
            Ok(n) => out.push_str(&(n / scale).max(1).to_string()),
            Err(_) => out.push_str(&tail[..digits]),
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Every shipped workflow, its durations scaled, in `dir`.
fn scaled_workflows(dir: &Path, scale: u64) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/workflows");
    for entry in std::fs::read_dir(shipped).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            dir.join(path.file_name().unwrap()),
            scale_durations(&text, scale),
        )
        .unwrap();
    }
}

/// `n` anomalies at `rate` per second, the four archetypes in turn, each from a source of its
/// own.
async fn produce(topic: &str, n: u64, rate: u64) {
    let codec = Codec::with_registry(&registry(), &[(topic, "aura.v1.TdaAnomaly")])
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let mut generators: Vec<Generator> = ARCHETYPES
        .iter()
        .enumerate()
        .map(|(i, a)| Generator::for_scenario(a, 11 + i as u64, 0.1, 1 << 40, 0.0).unwrap())
        .collect();
    let mut pending = Vec::new();
    let started = Instant::now();
    for i in 0..n as usize {
        let due = started + Duration::from_secs_f64(i as f64 / rate.max(1) as f64);
        tokio::time::sleep_until(due.into()).await;
        let anomaly = generators[i % ARCHETYPES.len()].anomaly(aura::clock::now_ms());
        let value = codec.encode(topic, &anomaly).unwrap();
        let key = anomaly.correlation_id.clone();
        pending.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "minutes of broker time: run with --ignored (see the file's doc)"]
async fn ten_thousand_coordination_sagas_end_with_5_percent_failing_and_5_percent_silent_agents() {
    let sagas = env_or("AURA_COMPLETION_SAGAS", 10_000);
    let scale = env_or("AURA_COMPLETION_TIME_SCALE", 10);
    let rate = env_or("AURA_COMPLETION_RATE", 50);
    let topics = TestTopics::new("completion");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    scaled_workflows(&workflows, scale);
    let extra = format!(
        "[sagas]\nenabled = true\nworkflows = {:?}\n",
        workflows.display().to_string()
    );
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", &extra);
    let service = Service::start(&config, "completion", dir.path());
    let flags = [
        "--latency-ms",
        "1..50",
        "--failure-rate",
        "0.05",
        "--silence-rate",
        "0.05",
        "--vote-disagreement",
        "0.2",
    ];
    let _agents = start_agents_with(&topics, dir.path(), &flags);
    let started = Instant::now();
    produce(&topics.anomalies, sagas, rate).await;
    let histories = saga_histories(
        &topics.sagas,
        sagas as usize,
        Duration::from_secs(10),
        Duration::from_secs(30 * 60),
    )
    .await;
    let elapsed = started.elapsed();
    let mut by_end: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_workflow: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut why: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for h in histories.values() {
        let last = h.last().map(|e| e.kind).unwrap();
        let end = if is_terminal(last) {
            format!("{last:?}")
        } else {
            "unfinished".into()
        };
        *by_end.entry(end.clone()).or_default() += 1;
        *by_workflow.entry((h[0].workflow.clone(), end)).or_default() += 1;
        // Why compensated sagas compensated: the first words of the reason.
        if let Some(e) = h.iter().find(|e| e.kind == K::Compensating) {
            let reason = e.reason.clone().unwrap_or_default();
            let cause: Vec<&str> = reason.split_whitespace().take(8).collect();
            let causes = why.entry(h[0].workflow.clone()).or_default();
            *causes.entry(cause.join(" ")).or_default() += 1;
        }
    }
    let ended = histories
        .values()
        .filter(|h| h.last().is_some_and(|e| is_terminal(e.kind)))
        .count();
    let decisions = read_until_idle(
        &topics.decisions,
        1,
        Duration::from_secs(3),
        Duration::from_secs(30),
    )
    .len();
    eprintln!(
        "completion: {ended} of {sagas} sagas ended ({:.2}%) in {:.0} s (durations / {scale}); \
{by_end:?}; workflows {by_workflow:?}; {decisions} consensus decisions; {} duplicated events \
(rate {rate}/s)",
        100.0 * ended as f64 / sagas as f64,
        elapsed.as_secs_f64(),
        duplicates(&histories),
    );
    eprintln!("completion: why sagas compensated: {why:#?}");
    assert_eq!(
        histories.len() as u64,
        sagas,
        "every incident started a saga"
    );
    assert!(
        ended as f64 >= 0.999 * sagas as f64,
        "{ended} of {sagas} ended: {by_end:?}"
    );
    assert_eq!(duplicates(&histories), 0);
    assert!(decisions > 0, "no consensus step decided");
    assert!(
        by_end.contains_key(&format!("{:?}", K::Completed)),
        "{by_end:?}"
    );
    assert!(service.stop().success());
}

#[test]
fn durations_are_scaled_and_nothing_else() {
    let text = "timeout_ms = 90000\nretry = { initial_interval_ms = 2000, max_attempts = 3 }\n";
    assert_eq!(
        scale_durations(text, 20),
        "timeout_ms = 4500\nretry = { initial_interval_ms = 100, max_attempts = 3 }\n"
    );
}
