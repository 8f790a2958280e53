//! Learning from `orchestration.feedback` on the real broker: confirmed feedback changes a later
//! route, and what was learned survives a SIGKILL and a restart (the patterns changelog).

mod common;

use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{AgentCommand, RoutingFeedback, TdaAnomaly};
use aura::semantic::archetypes::scenario;
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

/// A DDoS-shaped anomaly with fresh ids: its own incident, so it gets a command of its own.
fn probe(shape: &TdaAnomaly, n: usize) -> TdaAnomaly {
    let mut a = shape.clone();
    a.anomaly_id = unique(&format!("probe-{n}"));
    a.correlation_id = unique("incident");
    a.detected_at = aura::clock::now_ms();
    a
}

struct Client {
    codec: Codec,
    producer: FutureProducer,
}

impl Client {
    async fn new(topics: &TestTopics) -> Self {
        let codec = Codec::with_registry(
            &registry(),
            &[
                (topics.anomalies.as_str(), "aura.v1.TdaAnomaly"),
                (topics.feedback.as_str(), "aura.v1.RoutingFeedback"),
            ],
        )
        .await
        .unwrap();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .create()
            .unwrap();
        Self { codec, producer }
    }

    async fn send(&self, topic: &str, key: &str, value: Vec<u8>) {
        self.producer
            .send(
                FutureRecord::to(topic).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        self.producer.flush(Duration::from_secs(10)).unwrap();
    }

    async fn anomaly(&self, topics: &TestTopics, a: &TdaAnomaly) {
        let value = self.codec.encode(&topics.anomalies, a).unwrap();
        self.send(&topics.anomalies, &a.correlation_id, value).await;
    }

    async fn confirm(&self, topics: &TestTopics, a: &TdaAnomaly, pattern: &str) {
        let feedback = RoutingFeedback {
            anomaly_id: a.anomaly_id.clone(),
            pattern: Some(pattern.into()),
            agent_type: None,
            coordination: None,
            layer: None,
            anomaly: Some(a.clone()),
            confirmed_by: "oncall@example.com".into(),
            at: aura::clock::now_ms(),
        };
        let value = self.codec.encode(&topics.feedback, &feedback).unwrap();
        self.send(&topics.feedback, &a.anomaly_id, value).await;
    }

    /// The command for anomaly `id`, read_committed.
    async fn command_for(&self, topics: &TestTopics, id: &str, service: &Service) -> AgentCommand {
        let consumer = committed_reader(&topics.commands);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            use rdkafka::message::Message;
            let c: AgentCommand = self
                .codec
                .decode(m.payload().unwrap_or_default())
                .await
                .unwrap();
            if c.anomaly_ids.iter().any(|a| a == id) {
                return c;
            }
        }
        panic!("no command for {id}; log:\n{}", service.log_text());
    }
}

/// Waits until the committed patterns changelog holds a record keyed `pattern`.
fn changelog_has(topics: &TestTopics, pattern: &str, timeout: Duration) -> bool {
    let changelog = format!("{}-patterns-changelog", topics.group);
    let records = read_committed(&changelog, timeout, |rs| {
        rs.iter().any(|r| r.key.as_deref() == Some(pattern))
    });
    records.iter().any(|r| r.key.as_deref() == Some(pattern))
}

#[tokio::test(flavor = "multi_thread")]
async fn feedback_changes_a_later_route_and_survives_a_sigkill() {
    let topics = TestTopics::new("learning");
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let client = Client::new(&topics).await;
    let mut shapes = scenario("ddos", 21, 0.3).unwrap().map(|ex| ex.anomaly);
    let (storm, surge) = (shapes.next().unwrap(), shapes.nth(5).unwrap());

    let first = Service::start(&config, "learning-0", dir.path());
    let before = probe(&storm, 0);
    client.anomaly(&topics, &before).await;
    let c = client
        .command_for(&topics, &before.anomaly_id, &first)
        .await;
    assert_eq!(c.pattern_id.as_deref(), Some("ddos"), "{}", c.explanation);
    let shipped_version = version_in(&c.explanation);

    client
        .confirm(&topics, &before, "storm-of-the-century")
        .await;
    assert!(
        changelog_has(&topics, "storm-of-the-century", Duration::from_secs(30)),
        "the learned pattern never reached the changelog; log:\n{}",
        first.log_text()
    );
    let after = probe(&storm, 1);
    client.anomaly(&topics, &after).await;
    let c = client.command_for(&topics, &after.anomaly_id, &first).await;
    assert_eq!(
        c.pattern_id.as_deref(),
        Some("storm-of-the-century"),
        "{}",
        c.explanation
    );
    assert_eq!(c.workflow, "triage", "a learned pattern is triaged");
    assert!(version_in(&c.explanation) > shipped_version);

    // Feedback in flight at the kill: either its transaction committed, or its offset did not
    // and the restarted instance learns it again. Either way it is learned exactly once.
    client.confirm(&topics, &surge, "surge-of-the-decade").await;
    first.kill();
    let committed_before_kill =
        changelog_has(&topics, "surge-of-the-decade", Duration::from_millis(500));
    println!("second feedback committed before the SIGKILL: {committed_before_kill}");

    let second = Service::start(&config, "learning-0", dir.path());
    for (shape, pattern, n) in [
        (&storm, "storm-of-the-century", 2),
        (&surge, "surge-of-the-decade", 3),
    ] {
        let probe = probe(shape, n);
        client.anomaly(&topics, &probe).await;
        let c = client
            .command_for(&topics, &probe.anomaly_id, &second)
            .await;
        assert_eq!(
            c.pattern_id.as_deref(),
            Some(pattern),
            "{}\nlog:\n{}",
            c.explanation,
            second.log_text()
        );
    }
    assert!(
        second.log_text().contains("learned patterns restored"),
        "{}",
        second.log_text()
    );
    // The gauge shows the version the restarted instance routes with: past both learned changes.
    let metrics = reqwest::get(format!("http://{}/metrics", http_address(&second)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = metrics
        .lines()
        .find_map(|l| l.strip_prefix("aura_pattern_library_version "))
        .unwrap_or_else(|| panic!("no aura_pattern_library_version in\n{metrics}"));
    assert!(
        gauge.trim().parse::<u64>().unwrap() >= shipped_version + 2,
        "{gauge}"
    );
    second.stop();
}

/// The `pattern library vN` an explanation ends with.
fn version_in(explanation: &str) -> u64 {
    explanation
        .rsplit("pattern library v")
        .next()
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no library version in {explanation}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn what_one_instance_learns_every_instance_routes_with() {
    let topics = TestTopics::new("learning-global");
    create_topic(&topics.anomalies, 3).await;
    create_topic(&topics.feedback, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let client = Client::new(&topics).await;
    let storm = scenario("ddos", 33, 0.3).unwrap().next().unwrap().anomaly;
    let instances = [
        Service::start(&config, "global-0", dir.path()),
        Service::start(&config, "global-1", dir.path()),
    ];
    // Both members are in the group, each with partitions, before anything is learned: the
    // anomaly partitions split between them, and the one feedback partition goes to one of them.
    // (A rebalance while the feedback is processed would let both learn it, and neither log.)
    for s in &instances {
        let ready = format!("http://{}/readyz", http_address(s));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !reqwest::get(&ready)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "never ready:\n{}", s.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let warm_up = probe(&storm, 0);
    client.anomaly(&topics, &warm_up).await;
    client
        .command_for(&topics, &warm_up.anomaly_id, &instances[0])
        .await;

    client
        .confirm(&topics, &warm_up, "storm-of-the-century")
        .await;
    assert!(changelog_has(
        &topics,
        "storm-of-the-century",
        Duration::from_secs(30)
    ));
    // The instance that did not learn applies the changelog record (an instance's own record
    // changes nothing, so only the other one logs it).
    let deadline = Instant::now() + Duration::from_secs(20);
    let applied = |s: &Service| s.log_text().contains("learned pattern applied");
    while !instances.iter().any(applied) {
        assert!(
            Instant::now() < deadline,
            "no instance applied the other's learning:\n{}\n{}",
            instances[0].log_text(),
            instances[1].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(instances.iter().filter(|s| applied(s)).count(), 1);
    // Incidents on every anomaly partition (3, as `output.partitions`), so both instances route
    // some, and all of them with the learned pattern.
    let mut covered = [0; 3];
    let mut n = 0;
    while covered.iter().any(|&c| c < 2) {
        n += 1;
        let p = probe(&storm, n);
        let partition = aura::runtime::partitioner::partition_for(p.correlation_id.as_bytes(), 3);
        if covered[partition as usize] >= 2 {
            continue;
        }
        covered[partition as usize] += 1;
        client.anomaly(&topics, &p).await;
        let c = client
            .command_for(&topics, &p.anomaly_id, &instances[0])
            .await;
        assert_eq!(
            c.pattern_id.as_deref(),
            Some("storm-of-the-century"),
            "partition {partition}: {}",
            c.explanation
        );
    }
    for s in instances {
        s.stop();
    }
}
