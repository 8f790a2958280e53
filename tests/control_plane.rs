//! The live control plane on the real broker: the agent registry, feature flags and the
//! correlation window, each changing what the running service does.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::generator::Generator;
use aura::model::{
    AgentCommand, AgentRegistration, AgentStatus, AgentType, CorrelationEvent, FeatureFlag,
    SagaEvent, SagaEventKind, TdaAnomaly,
};
use aura::semantic::flags::rollout_bucket;
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

struct Publisher {
    codec: Codec,
    producer: FutureProducer,
}

impl Publisher {
    async fn new(topics: &TestTopics, registry_topic: &str, flags_topic: &str) -> Self {
        let codec = Codec::with_registry(
            &registry(),
            &[
                (topics.anomalies.as_str(), "aura.v1.TdaAnomaly"),
                (registry_topic, "aura.v1.AgentRegistration"),
                (flags_topic, "aura.v1.FeatureFlag"),
            ],
        )
        .await
        .unwrap();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap();
        Self { codec, producer }
    }

    async fn send<T: aura::codec::AvroRecord>(&self, topic: &str, key: &str, value: Option<&T>) {
        let bytes = value.map(|v| self.codec.encode(topic, v).unwrap());
        let mut record = FutureRecord::<str, Vec<u8>>::to(topic).key(key);
        if let Some(b) = &bytes {
            record = record.payload(b);
        }
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .unwrap();
    }

    async fn anomaly(&self, topic: &str, a: &TdaAnomaly) {
        self.send(topic, &a.correlation_id, Some(a)).await;
    }
}

fn agent(id: &str, t: AgentType) -> AgentRegistration {
    let capabilities = aura::semantic::PatternLibrary::builtin()
        .patterns
        .iter()
        .flat_map(|p| p.steps.clone())
        .filter(|s| s.agent_type == t)
        .flat_map(|s| s.capabilities)
        .collect();
    AgentRegistration {
        agent_id: id.into(),
        agent_type: t,
        capabilities,
        capacity: 100,
        status: AgentStatus::Available,
        updated_at: aura::clock::now_ms(),
    }
}

/// Control-plane topics of this test, and a config that uses them (sagas off: one command per
/// incident, so each command shows the routing decision of its own anomaly).
fn config(
    topics: &TestTopics,
    dir: &std::path::Path,
    extra: &str,
) -> (std::path::PathBuf, String, String) {
    let (registry_topic, flags_topic) = (
        format!("{}-registry", topics.group),
        format!("{}-flags", topics.group),
    );
    let path = topics.write_config_with(
        dir,
        "exactly_once_v2",
        &format!("[sagas]\nenabled = false\n{extra}"),
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[topics]\n",
        &format!("[topics]\nregistry = \"{registry_topic}\"\nflags = \"{flags_topic}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
    (path, registry_topic, flags_topic)
}

/// Publishes a fresh incident (its own correlation key) and returns its command.
async fn command_for_new_incident(
    p: &Publisher,
    topics: &TestTopics,
    generator: &mut Generator,
    seen: &mut usize,
) -> AgentCommand {
    let a = generator.anomaly(aura::clock::now_ms());
    p.anomaly(&topics.anomalies, &a).await;
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, *seen + 1).await;
    *seen = commands.len();
    commands
        .into_iter()
        .find(|c| c.anomaly_ids == vec![a.anomaly_id.clone()])
        .expect("the incident's command")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_makes_agents_routable_within_a_second_load_spreads_and_a_tombstone_removes_them(
) {
    let topics = TestTopics::new("registry");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    // Registered once, without heartbeats: a timeout longer than the test.
    let (config, registry_topic, flags_topic) = config(
        &topics,
        dir.path(),
        "[registry]\nheartbeat_timeout_ms = 600000\n",
    );
    let p = Publisher::new(&topics, &registry_topic, &flags_topic).await;
    let service = Service::start(&config, "registry-0", dir.path());
    let mut generator = Generator::new(61, 1_000_000, 0.0);
    let mut seen = 0;

    let before = command_for_new_incident(&p, &topics, &mut generator, &mut seen).await;
    assert_eq!(before.agent_id, None, "{}", before.explanation);
    assert!(
        before.explanation.contains("registry empty"),
        "{}",
        before.explanation
    );

    // Two agents of every type register.
    for t in [
        AgentType::Observer,
        AgentType::Analyst,
        AgentType::Supervisor,
    ] {
        for n in 1..=2 {
            let a = agent(&format!("{t:?}-{n}"), t);
            p.send(&registry_topic, &a.agent_id, Some(&a)).await;
        }
    }
    let registered = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut picks: HashMap<String, usize> = HashMap::new();
    for i in 0..12 {
        let c = command_for_new_incident(&p, &topics, &mut generator, &mut seen).await;
        assert!(
            c.agent_id.is_some(),
            "incident {i}, sent {:?} after the registrations: {}",
            registered.elapsed(),
            c.explanation
        );
        assert!(
            !c.explanation.contains("capabilities not checked"),
            "{}",
            c.explanation
        );
        *picks.entry(c.agent_id.unwrap()).or_default() += 1;
    }
    // No agent answers here, so each pick adds outstanding work: the two agents of a type take
    // turns, and neither gets more than one command over the other.
    for t in ["Observer", "Analyst", "Supervisor"] {
        let (a, b) = (
            picks.get(&format!("{t}-1")).copied().unwrap_or(0),
            picks.get(&format!("{t}-2")).copied().unwrap_or(0),
        );
        assert!(a.abs_diff(b) <= 1, "{t}: {picks:?}");
    }

    // Tombstones: every agent leaves, and commands go unassigned again.
    for t in [
        AgentType::Observer,
        AgentType::Analyst,
        AgentType::Supervisor,
    ] {
        for n in 1..=2 {
            p.send::<AgentRegistration>(&registry_topic, &format!("{t:?}-{n}"), None)
                .await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = command_for_new_incident(&p, &topics, &mut generator, &mut seen).await;
    assert_eq!(after.agent_id, None, "{}", after.explanation);

    let metrics = reqwest::get(format!("http://{}/metrics", http_address(&service)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("aura_registry_agents{agent_type=\"ANALYST\",status=\"AVAILABLE\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aura_route_cache_invalidations_total{cause=\"registry\"} 12"),
        "{metrics}"
    );
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flag_at_30_percent_sends_its_share_of_incidents_to_the_canary_and_the_kill_switch_stops_it(
) {
    let topics = TestTopics::new("canary");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    // Every shipped workflow but triage has triage as its canary, on one flag.
    let library = aura::semantic::PatternLibrary::builtin();
    let mut workflows: Vec<String> = library
        .patterns
        .iter()
        .map(|p| p.workflow.clone())
        .collect();
    workflows.sort();
    workflows.dedup();
    workflows.retain(|w| w != "triage");
    let canaries: String = workflows
        .iter()
        .map(|w| {
            format!(
                "[[sagas.canaries]]\nflag = \"canary\"\nworkflow = \"{w}\"\ncanary = \"triage\"\n"
            )
        })
        .collect();
    let (config, registry_topic, flags_topic) = config(&topics, dir.path(), &canaries);
    let p = Publisher::new(&topics, &registry_topic, &flags_topic).await;
    let flag = |enabled| FeatureFlag {
        name: "canary".into(),
        enabled,
        rollout_percent: 30.0,
        updated_at: aura::clock::now_ms(),
    };
    p.send(&flags_topic, "canary", Some(&flag(true))).await;
    let service = Service::start(&config, "canary-0", dir.path());

    let mut generator = Generator::new(71, 1_000_000, 0.0);
    let mut sent = Vec::new();
    for _ in 0..300 {
        let a = generator.anomaly(aura::clock::now_ms());
        p.anomaly(&topics.anomalies, &a).await;
        sent.push(a.correlation_id);
    }
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, 300).await;
    assert_eq!(commands.len(), 300, "log:\n{}", service.log_text());
    let (mut eligible, mut canaried) = (0, 0);
    for c in &commands {
        let canary = c.explanation.contains("canary: workflow triage");
        if canary || workflows.contains(&c.workflow) {
            eligible += 1;
            // Exactly the keys whose stable bucket is under 30% take the canary.
            let expected = rollout_bucket("canary", &c.correlation_id) < 3_000;
            assert_eq!(canary, expected, "{}: {}", c.correlation_id, c.explanation);
            if canary {
                canaried += 1;
                assert_eq!(c.workflow, "triage");
            }
        }
    }
    let share = canaried as f64 / eligible as f64;
    assert!(
        (0.2..0.4).contains(&share),
        "{canaried} of {eligible} took the canary"
    );

    // The kill switch: the flag disabled, no incident takes the canary any more.
    p.send(&flags_topic, "canary", Some(&flag(false))).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..100 {
        p.anomaly(&topics.anomalies, &generator.anomaly(aura::clock::now_ms()))
            .await;
    }
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, 400).await;
    assert_eq!(commands.len(), 400);
    // Commands are read partition by partition, not in time order: count them all.
    let all_canaries = commands
        .iter()
        .filter(|c| c.explanation.contains("canary:"))
        .count();
    assert_eq!(all_canaries, canaried, "no canary after the kill switch");
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_across_a_five_minute_boundary_is_one_incident_and_every_joined_anomaly_is_in_a_correlation_event(
) {
    let topics = TestTopics::new("storm-boundary");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    // The window closes `gap_ms` after its last anomaly, in processing time too (a late storm
    // does not keep state alive forever). The storm below lies up to ~8 minutes in the past, so
    // the default 5-minute gap could close its window between two of its own records,
    // depending on the time of day; 15 minutes keeps it open for the whole test.
    let config = topics.write_config_with(
        dir.path(),
        "exactly_once_v2",
        "[correlation]\ngap_ms = 900000\n",
    );
    let p = Publisher::new(&topics, "unused-registry", "unused-flags").await;
    // 100 anomalies one second apart, straddling a five-minute boundary (the old incident
    // bucket), all in the past.
    let now = aura::clock::now_ms();
    let boundary = (now - 120_000) / 300_000 * 300_000;
    let mut generator = Generator::new(81, 1, 0.0);
    let mut ids = Vec::new();
    for i in 0..100 {
        let mut a = generator.anomaly(now);
        a.correlation_id = "storm-key".into();
        a.detected_at = boundary - 50_000 + i * 1_000;
        ids.push(a.anomaly_id.clone());
        p.anomaly(&topics.anomalies, &a).await;
    }
    let service = Service::start(&config, "storm-0", dir.path());
    let correlations: Vec<CorrelationEvent> = decode_topic(&topics.correlations, 99).await;
    let events: Vec<SagaEvent> = decode_topic(&topics.sagas, 1).await;
    let started: Vec<&SagaEvent> = events
        .iter()
        .filter(|e| e.kind == SagaEventKind::Started)
        .collect();
    assert_eq!(
        started.len(),
        1,
        "one incident, one saga; log:\n{}",
        service.log_text()
    );
    let joined: Vec<&String> = correlations.iter().flat_map(|c| &c.anomaly_ids).collect();
    assert_eq!(joined.len(), 99, "every anomaly but the first joined");
    assert!(correlations
        .iter()
        .all(|c| c.incident_id == started[0].saga_id));
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, 1).await;
    let first = &commands[0];
    let mut accounted: Vec<&String> = joined.clone();
    accounted.push(&first.anomaly_ids[0]);
    accounted.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(
        accounted, expected,
        "each anomaly in the first command or one correlation event"
    );
    assert!(service.stop().success());
}
