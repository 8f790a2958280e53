//! Saga state queries and saga gauges on the real broker, with two instances in one group:
//! each saga is answered by exactly the instance that owns its partition, the other points at
//! that partition, and the gauges of both add up to the sagas there are.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use aura::processor::incident_key;
use aura::runtime::partitioner::partition_for;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::Value;

const SAGAS_ON: &str = "[sagas]\nenabled = true\n";

/// Each saga id on the saga event topic and the partition its state lives in (its correlation
/// key's partition of `partitions`, docs/KEYS.md), read until at least `min` sagas are seen and
/// nothing new came for two seconds.
fn saga_partitions(topic: &str, partitions: i32, min: usize) -> BTreeMap<String, i32> {
    let consumer = committed_reader(topic);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Instant::now();
    let mut sagas = BTreeMap::new();
    while Instant::now() < deadline && !(sagas.len() >= min && last.elapsed().as_secs() >= 2) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            let partition = partition_for(incident_key(&key).as_bytes(), partitions);
            sagas.insert(key, partition);
        }
    }
    sagas
}

fn partition_count(topic: &str) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    metadata.topics()[0].partitions().len()
}

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn wait_ready(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&format!("{base}/readyz")).await.0 != 200 {
        assert!(Instant::now() < deadline, "{base} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `name` (with its labels, as rendered) in a Prometheus text exposition; 0 when absent.
fn metric(text: &str, name: &str) -> i64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as i64)
}

const STATES: [&str; 5] = [
    "running",
    "compensating",
    "completed",
    "compensated",
    "failed",
];

/// Sagas held by state, active sagas and pending timers, as one instance reports them.
async fn saga_gauges(base: &str) -> (HashMap<&'static str, i64>, i64, i64) {
    let (_, text) = get(&format!("{base}/metrics")).await;
    let text = text.as_str().unwrap().to_string();
    let by_state = STATES
        .iter()
        .map(|s| (*s, metric(&text, &format!("aura_sagas{{state=\"{s}\"}}"))))
        .collect();
    (
        by_state,
        metric(&text, "aura_sagas_active"),
        metric(&text, "aura_saga_timers_pending"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn each_saga_is_answered_by_its_owner_and_the_other_instance_names_its_partition() {
    let topics = TestTopics::new("saga-queries");
    create_topic(&topics.anomalies, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", SAGAS_ON);
    // Distinct sources: one saga per anomaly.
    produce_anomalies_from(&topics.anomalies, 40, 1_000_000, 53).await;
    let first = Service::start(&config, "first", dir.path());
    // Slow agents keep the sagas in flight for the whole test.
    let _agents = start_simulated_agents(&topics, dir.path(), "0", "5000..8000");
    // The anomaly topic (4 partitions) does not line up with the results (3): anomalies take
    // the re-key hop, and each saga lives in its correlation key's partition of the results.
    let sagas = saga_partitions(&topics.sagas, 3, 35);
    assert!(sagas.len() >= 35, "sagas started: {}", sagas.len());
    // The second instance joins now, so the first gives up partitions whose sagas it counted.
    let second = Service::start(&config, "second", dir.path());
    let bases = [&first, &second].map(|s| format!("http://{}", http_address(s)));
    for base in &bases {
        wait_ready(base).await;
    }
    assert_eq!(partition_count(&topics.results), 3);

    let mut in_flight = 0;
    for (saga_id, partition) in sagas.iter().take(12) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let answers = loop {
            let mut answers = Vec::new();
            for base in &bases {
                answers.push(get(&format!("{base}/sagas/{saga_id}")).await);
            }
            let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
            statuses.sort();
            // Anything else is a rebalance or a trigger not processed yet: ask again.
            if statuses == [200, 404] || Instant::now() > deadline {
                break answers;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let (found, elsewhere): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.0 == 200);
        assert_eq!(
            (found.len(), elsewhere.len()),
            (1, 1),
            "{saga_id}: {answers:?}\nfirst:\n{}\nsecond:\n{}",
            first.log_text(),
            second.log_text()
        );
        let (state, pointer) = (&found[0].1, &elsewhere[0].1);
        assert_eq!(state["saga_id"], saga_id.as_str());
        assert!(state["started_at"].as_i64().unwrap() > 0, "{state}");
        assert_eq!(pointer["partition"], *partition, "{saga_id}: {pointer}");
        assert_eq!(pointer["topic"], topics.results.as_str());
        assert_eq!(pointer["owned_here"], false);
        assert!(
            pointer["hint"]
                .as_str()
                .unwrap()
                .contains(&format!("partition {partition} of {}", topics.results)),
            "{pointer}"
        );
        if matches!(state["status"].as_str(), Some("RUNNING" | "COMPENSATING")) {
            in_flight += 1;
        }
    }
    assert!(in_flight > 0, "slow agents leave sagas in flight");

    // Together the instances hold every saga exactly once: a revoked partition left nothing
    // behind in the first instance's gauges. Triggers may still be in processing, so wait.
    let sagas = saga_partitions(&topics.sagas, 3, sagas.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut held = 0;
        let mut reports = Vec::new();
        for base in &bases {
            let (by_state, active, timers) = saga_gauges(base).await;
            assert_eq!(
                active,
                by_state["running"] + by_state["compensating"],
                "{base}: {by_state:?}"
            );
            assert!(timers >= active, "every saga in flight waits on a timer");
            held += by_state.values().sum::<i64>();
            reports.push((by_state, active, timers));
        }
        let total_active: i64 = reports.iter().map(|r| r.1).sum();
        if held == sagas.len() as i64 && total_active > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gauges {reports:?} do not add up to the {} sagas started",
            sagas.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(first.stop().success());
    assert!(second.stop().success());
}
