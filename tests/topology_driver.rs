//! The service's topology driven on the embedded log, as Kafka Streams' `TopologyTestDriver`
//! drives a topology without a broker: the processors `aura run` builds, records piped in,
//! outputs read back, and a restart that restores every task from its changelogs.

use std::collections::HashMap;
use std::sync::Arc;

use aura::codec::Codec;
use aura::config::Config;
use aura::generator::Generator;
use aura::model::{
    AgentCommand, AgentResult, CorrelationEvent, ResultStatus, SagaEvent, SagaEventKind, TdaAnomaly,
};
use aura::processor::incident_key;
use aura::runtime::partitioner::partition_for;
use aura::runtime::{EmbeddedLog, EmbeddedRunner, OutputRecord, RecordHandler};
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};
use aura::telemetry::Metrics;
use aura::topology::Topology;

const PARTITIONS: i32 = 3;

struct Driver {
    log: Arc<EmbeddedLog>,
    codec: Codec,
    config: Config,
    metrics: Metrics,
}

impl Driver {
    fn new() -> Self {
        let config = Config::default();
        let log = Arc::new(EmbeddedLog::new());
        for topic in [&config.topics.anomalies, &config.topics.agent_results] {
            log.create_topic(topic, PARTITIONS);
        }
        Self {
            log,
            codec: Codec::embedded(),
            config,
            metrics: Metrics::new(),
        }
    }

    /// A fresh set of tasks on the log: what an instance starting (or restarting) builds.
    fn start(&self) -> EmbeddedRunner {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let make = aura::app::incident_tasks(
            &self.config,
            &self.metrics,
            Arc::default(),
            engine,
            PARTITIONS,
        )
        .unwrap();
        let handler = RecordHandler::new(
            self.codec.clone(),
            Topology::new(&self.config),
            self.metrics.clone(),
        );
        EmbeddedRunner::new(self.log.clone(), handler, "driver", &make, PARTITIONS)
    }

    fn pipe(&self, topic: &str, key: &str, value: Vec<u8>, partition: Option<i32>) {
        self.log.append(
            OutputRecord {
                partition,
                topic: topic.into(),
                key: Some(key.as_bytes().to_vec()),
                value: Some(value),
                headers: vec![],
            },
            aura::clock::now_ms(),
        );
    }

    fn pipe_anomaly(&self, a: &TdaAnomaly, partition: Option<i32>) {
        let topic = &self.config.topics.anomalies;
        let value = self.codec.encode(topic, a).unwrap();
        self.pipe(topic, &a.correlation_id, value, partition);
    }

    async fn read<T: aura::codec::AvroRecord>(&self, topic: &str) -> Vec<(String, i32, T)> {
        let mut out = Vec::new();
        for r in self.log.read_all(topic) {
            let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
            let value = self
                .codec
                .decode(r.value.as_deref().unwrap())
                .await
                .unwrap();
            out.push((key, r.partition, value));
        }
        out
    }
}

#[tokio::test]
async fn incidents_start_sagas_in_their_keys_partition_and_a_restart_resumes_them() {
    let d = Driver::new();
    let topics = d.config.topics.clone();
    let mut generator = Generator::new(9, 1_000_000, 0.0);
    let now = aura::clock::now_ms();
    let mut anomalies = Vec::new();
    for i in 0..5 {
        let first = generator.anomaly(now);
        let mut second = generator.anomaly(now);
        second.correlation_id = first.correlation_id.clone();
        second.anomaly_id = format!("{}-again", first.anomaly_id);
        // The first keyed as the TDA producer keys; the second put on another partition, as a
        // producer that keys some other way would: it takes the re-key hop.
        let home = partition_for(first.correlation_id.as_bytes(), PARTITIONS);
        d.pipe_anomaly(&first, None);
        d.pipe_anomaly(&second, Some((home + 1 + i % 2) % PARTITIONS));
        anomalies.push((first, second));
    }
    let mut runner = d.start();
    runner.run_until_idle(now).await;

    let commands: Vec<(String, i32, AgentCommand)> = d.read(&topics.commands).await;
    // A workflow whose first step is a crew sends several commands at its start.
    assert!(
        commands.len() >= 5,
        "at least one first command per incident"
    );
    let correlations: Vec<(String, i32, CorrelationEvent)> = d.read(&topics.correlations).await;
    assert_eq!(
        correlations.len(),
        5,
        "each second anomaly joined its incident"
    );
    assert_eq!(d.metrics.rekeyed.get(), 5);
    for (first, second) in &anomalies {
        let (key, _, command) = commands
            .iter()
            .find(|(_, _, c)| c.anomaly_ids == vec![first.anomaly_id.clone()])
            .expect("the first anomaly opened the incident");
        assert_eq!(key, &first.correlation_id);
        assert_eq!(command.partition_key, first.correlation_id);
        assert_eq!(incident_key(&command.saga_id), first.correlation_id);
        let (_, _, joined) = correlations
            .iter()
            .find(|(_, _, e)| e.anomaly_ids == vec![second.anomaly_id.clone()])
            .expect("the second anomaly is in a correlation event");
        assert_eq!(joined.incident_id, command.saga_id);
    }
    // Every changelog record is in its task's partition: the correlation key's.
    for changelog in Topology::new(&d.config).changelogs() {
        for r in d.log.read_all(&changelog) {
            let key = String::from_utf8(r.key.unwrap()).unwrap();
            let expected = partition_for(incident_key(&key).as_bytes(), PARTITIONS);
            assert_eq!(r.partition, expected, "{changelog}: {key}");
        }
    }

    // Restart: new tasks restore from the changelogs, then the agents' answers arrive.
    drop(runner);
    let mut runner = d.start();
    for (key, _, command) in &commands {
        let result = AgentResult {
            command_id: command.command_id.clone(),
            saga_id: command.saga_id.clone(),
            correlation_id: command.correlation_id.clone(),
            step: command.step.clone(),
            attempt: command.attempt,
            agent_type: command.agent_type,
            agent_id: "agent-1".into(),
            status: ResultStatus::Succeeded,
            output: HashMap::from([("actionable".to_string(), "true".to_string())]),
            error: None,
            finished_at: now + 10,
            proof: None,
        };
        let value = d.codec.encode(&topics.agent_results, &result).unwrap();
        d.pipe(&topics.agent_results, key, value, None);
    }
    runner.run_until_idle(now + 20).await;
    let events: Vec<(String, i32, SagaEvent)> = d.read(&topics.sagas).await;
    let succeeded = events
        .iter()
        .filter(|(_, _, e)| e.kind == SagaEventKind::StepSucceeded)
        .count();
    assert_eq!(
        succeeded,
        commands.len(),
        "every restored saga took the result of each of its commands"
    );
    let started = events
        .iter()
        .filter(|(_, _, e)| e.kind == SagaEventKind::Started)
        .count();
    assert_eq!(started, 5, "the restart started nothing twice");
}

/// A saga changelog record the task cannot read back (one of another version, say) is
/// dead-lettered with its reason and deleted by a tombstone, as `aura run` does; a restart after
/// that finds the key gone and reports nothing more.
#[tokio::test]
async fn an_unreadable_changelog_record_is_dead_lettered_once_on_the_embedded_log() {
    let d = Driver::new();
    let topology = Topology::new(&d.config);
    let changelog = topology.internal.changelog(aura::processor::SAGA_STORE);
    d.log.create_topic(&changelog, PARTITIONS);
    d.pipe(
        &changelog,
        "saga-bad",
        br#"{"saga_id":"saga-bad","status":"Running"}"#.to_vec(),
        Some(1),
    );
    let _ = d.start();
    let letters: Vec<(String, i32, aura::model::DeadLetter)> =
        d.read(&d.config.topics.dead_letters).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let (_, _, letter) = &letters[0];
    assert_eq!(letter.error_class, "changelog_unreadable");
    assert_eq!(letter.topic, changelog);
    assert_eq!(letter.key.as_deref(), Some(&b"saga-bad"[..]));
    assert!(
        letter.reason.starts_with("not a saga state"),
        "{}",
        letter.reason
    );
    let last = d.log.read_all(&changelog).into_iter().last().unwrap();
    assert_eq!(last.key.as_deref(), Some(&b"saga-bad"[..]));
    assert!(
        last.value.is_none(),
        "a tombstone follows the refused record"
    );

    let _ = d.start();
    assert_eq!(
        d.log.read_all(&d.config.topics.dead_letters).len(),
        1,
        "the restart found the key deleted"
    );
}
