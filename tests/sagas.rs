//! Durable sagas on the real broker: simulated agents answer, sagas finish, state survives
//! a SIGKILL.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aura::codec::Codec;
use aura::model::{AgentCommand, SagaEvent, SagaEventKind};
use common::*;

/// Reads saga events until at least `min` sagas started and every started saga ended (or
/// two minutes pass), then a few seconds more so a duplicate would show.
async fn saga_events(topics: &TestTopics, min: usize) -> Vec<SagaEvent> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let records = read_until_idle(
            &topics.sagas,
            min,
            Duration::from_secs(2),
            Duration::from_secs(30),
        );
        let mut events = Vec::new();
        for r in &records {
            events.push(codec.decode::<SagaEvent>(&r.value).await.unwrap());
        }
        let (last, _) = summarize(&events);
        let started = events
            .iter()
            .filter(|e| e.kind == SagaEventKind::Started)
            .count();
        let ended = last.values().filter(|k| is_terminal(**k)).count();
        if (started >= min && ended == started) || std::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn is_terminal(kind: SagaEventKind) -> bool {
    matches!(
        kind,
        SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
    )
}

/// Final kind per saga, and how often each (saga, kind, step, attempt) event appeared.
fn summarize(events: &[SagaEvent]) -> (HashMap<String, SagaEventKind>, usize) {
    let mut last = HashMap::new();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for e in events {
        if matches!(
            e.kind,
            SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
        ) {
            last.insert(e.saga_id.clone(), e.kind);
        } else {
            last.entry(e.saga_id.clone()).or_insert(e.kind);
        }
        // The command id tells apart the branches of a fan-out and the ballots of a consensus,
        // which share their step and attempt.
        if !seen.insert((
            e.saga_id.clone(),
            format!("{:?}", e.kind),
            e.step.clone(),
            e.attempt,
            e.command_id.clone(),
        )) {
            duplicates += 1;
        }
    }
    (last, duplicates)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_saga_completes_and_a_storm_joins_one_saga() {
    let topics = TestTopics::new("sagas-happy");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    // 300 anomalies about 10 sources within one incident window: 10 sagas.
    produce_anomalies_from(&topics.anomalies, 300, 10, 41).await;
    let service = Service::start(&config, "sagas-0", dir.path());
    let agents = start_simulated_agents(&topics, dir.path(), "0", "1..20");
    let events = saga_events(&topics, 10).await;
    let (last, duplicates) = summarize(&events);
    let started = events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Started)
        .count();
    assert_eq!(
        started,
        10,
        "one saga per incident; log:\n{}",
        service.log_text()
    );
    assert!(
        last.values().all(|k| *k == SagaEventKind::Completed),
        "{last:?}
agents:
{}
service:
{}",
        agents.log_text(),
        service.log_text()
    );
    assert_eq!(duplicates, 0);
    assert!(service.stop().success());
}

/// DESIGN.md's storm: 100 anomalies about one incident start one saga, and every one of them is
/// joined to it (the saga keeps the first ids and counts the rest), as `/sagas/{id}` shows.
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_100_anomalies_about_one_incident_starts_one_saga() {
    let topics = TestTopics::new("sagas-storm");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    // One source within one incident window; no agents, so the saga waits on its first step.
    produce_anomalies_from(&topics.anomalies, 100, 1, 59).await;
    let service = Service::start(&config, "storm-0", dir.path());
    let base = format!("http://{}", http_address(&service));

    let events: Vec<SagaEvent> = decode_topic(&topics.sagas, 1).await;
    let started: Vec<&SagaEvent> = events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Started)
        .collect();
    assert_eq!(started.len(), 1, "one saga; log:\n{}", service.log_text());
    let url = format!("{base}/sagas/{}", started[0].saga_id);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let joined = loop {
        let state: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        let kept = state["anomaly_ids"].as_array().map_or(0, Vec::len) as u64;
        let counted = state["more_anomalies"].as_u64().unwrap_or(0);
        if kept + counted >= 100 || std::time::Instant::now() > deadline {
            break kept + counted;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        joined, 100,
        "every anomaly of the storm joined the one saga"
    );
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn sagas_in_flight_survive_a_sigkill_without_duplicates() {
    let topics = TestTopics::new("sagas-kill");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    // Static membership: the restarted instance (same instance id) gets its partitions back
    // without waiting for the killed member's session to expire.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[kafka]\n", "[kafka]\n\"static.membership\" = true\n"),
    )
    .unwrap();
    // Distinct sources: one saga per anomaly, well over 1,000 in flight at the kill. Agents
    // do not fail here (retries are covered elsewhere), so the run is short.
    produce_anomalies_from(&topics.anomalies, 1500, 1_000_000, 43).await;
    let first = Service::start(&config, "victim", dir.path());
    // Slow agents, so that most sagas are between steps when the service dies.
    let agents = start_simulated_agents(&topics, dir.path(), "0", "300..1500");
    // Kill only once saga state is committed (a STARTED event commits with its changelog write),
    // so the restart has state to restore whatever the machine's speed.
    read_committed(&topics.sagas, Duration::from_secs(60), |r| r.len() >= 300);
    first.kill();
    let restarted = std::time::Instant::now();
    let second = Service::start(&config, "victim", dir.path());
    let processing_again = first_output_after(&second, restarted).await;
    let events = saga_events(&topics, 1400).await;
    let (last, duplicates) = summarize(&events);
    let started = events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Started)
        .count();
    let terminal = last.values().filter(|k| is_terminal(**k)).count();
    let log = second.log_text();
    // The restarted instance logs how much state each task read back from the changelog.
    let restored: u64 = log
        .lines()
        .filter(|l| l.contains("stores restored"))
        .filter_map(|l| {
            l.split("records=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    eprintln!(
        "from restart: processing again after {processing_again:?}, every saga seen terminal after {:?}; \
         started {started}, terminal {terminal}, changelog records restored {restored}",
        restarted.elapsed()
    );
    assert!(started >= 1400, "sagas started: {started}; log:\n{log}");
    assert!(
        restored > 0,
        "sagas in flight were restored from the changelog:\n{log}"
    );
    assert_eq!(
        terminal,
        started,
        "every saga reaches a terminal state; agents:\n{}",
        agents.log_text()
    );
    assert_eq!(
        duplicates, 0,
        "read_committed sees no duplicated saga event"
    );
    let commands: Vec<String> = decode_topic::<AgentCommand>(&topics.commands, 1)
        .await
        .into_iter()
        .map(|c| c.command_id)
        .collect();
    let repeated: Vec<_> = counts(&commands)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        commands.len() >= started && repeated.is_empty(),
        "read_committed sees every saga's commands once: {} commands, repeated {repeated:?}",
        commands.len()
    );
    assert!(second.stop().success());
}

/// How long after `since` the service produced its first output: the restarted instance is
/// processing again.
async fn first_output_after(service: &Service, since: std::time::Instant) -> Duration {
    let url = format!("http://{}/metrics", http_address(service));
    let deadline = since + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Ok(response) = reqwest::get(&url).await {
            let text = response.text().await.unwrap_or_default();
            let out: f64 = text
                .lines()
                .filter(|l| l.starts_with("aura_records_out_total"))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum();
            if out > 0.0 {
                return since.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the restarted service produced nothing within 60 s:\n{}",
        service.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_surviving_instance_takes_over_the_sagas_of_a_killed_one() {
    let topics = TestTopics::new("sagas-takeover");
    create_topic(&topics.anomalies, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    produce_anomalies_from(&topics.anomalies, 600, 1_000_000, 47).await;
    let survivor = Service::start(&config, "survivor", dir.path());
    let victim = Service::start(&config, "victim", dir.path());
    let agents = start_simulated_agents(&topics, dir.path(), "0", "300..1500");
    read_committed(&topics.sagas, Duration::from_secs(60), |r| r.len() >= 200);
    victim.kill();
    let events = saga_events(&topics, 550).await;
    let (last, duplicates) = summarize(&events);
    let started = events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Started)
        .count();
    let terminal = last.values().filter(|k| is_terminal(**k)).count();
    let log = survivor.log_text();
    assert!(started >= 550, "sagas started: {started}; log:\n{log}");
    assert_eq!(
        terminal,
        started,
        "every saga ends on the survivor; agents:\n{}",
        agents.log_text()
    );
    assert_eq!(
        duplicates, 0,
        "read_committed sees no duplicated saga event"
    );
    assert!(
        log.contains("stores restored"),
        "the survivor restored the victim's partitions:\n{log}"
    );
    assert!(survivor.stop().success());
}
