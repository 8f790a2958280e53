//! Authenticated agents on the real broker: Aura holds a keyring, `aura agents` signs with the
//! same keys, and answers that are forged, replayed or from an agent type that was not asked
//! go to the dead-letter topic with their reason code while every saga finishes as if they
//! never came. (Votes: no consensus step reads `agent.votes` yet, so the vote check is tested
//! at unit level, `auth::tests::votes_from_agent_types_not_asked_are_refused`.)

mod common;
#[path = "support/keys.rs"]
mod keys;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aura::auth::{sign, Key, Keyring};
use aura::codec::Codec;
use aura::model::{
    AgentCommand, AgentResult, AgentType, DeadLetter, ResultStatus, SagaEvent, SagaEventKind,
};
use aura::security::Secret;
use common::*;
use keys::{write_keyring, TYPES};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn answer_to(c: &AgentCommand, agent_type: AgentType, status: ResultStatus) -> AgentResult {
    AgentResult {
        command_id: c.command_id.clone(),
        saga_id: c.saga_id.clone(),
        correlation_id: c.correlation_id.clone(),
        step: c.step.clone(),
        attempt: c.attempt,
        agent_id: "intruder".into(),
        agent_type,
        status,
        output: HashMap::new(),
        error: Some("forged failure".into()),
        finished_at: aura::clock::now_ms(),
        proof: None,
    }
}

async fn publish(codec: &Codec, topic: &str, result: &AgentResult) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let value = codec.encode(topic, result).unwrap();
    // Keyed as agents key answers: by the command's partition_key, the saga id's correlation
    // key (docs/KEYS.md), so the answer reaches the task that holds the saga.
    let key = aura::processor::incident_key(&result.saga_id);
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

async fn first_command(codec: &Codec, topic: &str) -> AgentCommand {
    let records = read_committed(topic, Duration::from_secs(60), |r| !r.is_empty());
    assert!(!records.is_empty(), "no command within 60 s");
    codec.decode(&records[0].value).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_and_misdirected_results_go_to_the_dlq_and_sagas_finish_untouched() {
    let topics = TestTopics::new("agent-auth");
    let dir = tempfile::tempdir().unwrap();
    let (keyring_path, keyring) = write_keyring(dir.path());
    let config = topics.write_config_with(
        dir.path(),
        "exactly_once_v2",
        &format!("[agent_auth]\nkeyring = \"{}\"\n", keyring_path.display()),
    );
    create_topic(&topics.anomalies, 3).await;
    let service = Service::start(&config, "auth-0", dir.path());
    // Slow agents: the intruder's answers arrive first.
    let keyring_arg = keyring_path.to_str().unwrap();
    let agents = start_agents_with(
        &topics,
        dir.path(),
        &[
            "--latency-ms",
            "1500..2000",
            "--failure-rate",
            "0",
            "--keyring",
            keyring_arg,
        ],
    );
    produce_anomalies_from(&topics.anomalies, 1, 1, 7).await;

    let codec = Codec::with_registry(
        &registry(),
        &[(topics.results.as_str(), "aura.v1.AgentResult")],
    )
    .await
    .unwrap();
    let command = first_command(&codec, &topics.commands).await;
    let proof = command.proof.clone().expect("commands are signed");

    // Forged: FAILED, signed with a guessed secret under the real key id.
    let mut forged = answer_to(&command, command.agent_type, ResultStatus::Failed);
    let guess = Keyring::from_keys([Key {
        secret: Secret::new("a-guess-that-is-long-enough-0123456789"),
        ..keyring.active(command.agent_type).unwrap().clone()
    }]);
    sign(&guess, &mut forged, proof.incarnation).unwrap();
    publish(&codec, &topics.results, &forged).await;

    // From an agent type the saga did not ask, validly signed with that type's own key.
    let other = TYPES
        .iter()
        .map(|t| t.0)
        .find(|t| *t != command.agent_type)
        .unwrap();
    let mut misdirected = answer_to(&command, other, ResultStatus::Failed);
    sign(&keyring, &mut misdirected, proof.incarnation).unwrap();
    publish(&codec, &topics.results, &misdirected).await;

    // The saga completes on the genuine answers.
    let deadline = Instant::now() + Duration::from_secs(90);
    let events: Vec<SagaEvent> = loop {
        let events: Vec<SagaEvent> = decode_topic(&topics.sagas, 1).await;
        if events.iter().any(|e| e.kind == SagaEventKind::Completed) || Instant::now() > deadline {
            break events;
        }
    };
    assert!(
        events
            .iter()
            .any(|e| e.saga_id == command.saga_id && e.kind == SagaEventKind::Completed),
        "the saga completes: {events:?}\nservice:\n{}\nagents:\n{}",
        service.log_text(),
        agents.log_text()
    );
    assert!(
        !events.iter().any(|e| matches!(
            e.kind,
            SagaEventKind::StepFailed | SagaEventKind::Compensating
        )),
        "no forged failure reached the saga: {events:?}"
    );

    // Replayed: the genuine answer to the first command, sent again after the saga finished.
    let genuine_records =
        read_committed(&topics.results, Duration::from_secs(20), |r| r.len() >= 3);
    let mut genuine = None;
    for r in &genuine_records {
        let result: AgentResult = codec.decode(&r.value).await.unwrap();
        if result.command_id == command.command_id && result.agent_id != "intruder" {
            genuine = Some(result);
        }
    }
    let genuine = genuine.expect("the agents answered the first command");
    publish(&codec, &topics.results, &genuine).await;

    let letters: Vec<DeadLetter> = decode_topic(&topics.dlq, 3).await;
    let classes: Vec<&str> = letters.iter().map(|l| l.error_class.as_str()).collect();
    for class in ["auth_forged", "auth_agent_not_asked", "auth_replayed"] {
        assert_eq!(
            classes.iter().filter(|c| **c == class).count(),
            1,
            "one {class} dead letter: {classes:?}"
        );
    }
    assert!(letters.iter().all(|l| l.topic == topics.results));

    // Nothing more happened to the saga after the replay: no second completion.
    let after: Vec<SagaEvent> = decode_topic(&topics.sagas, 1).await;
    assert_eq!(
        after
            .iter()
            .filter(|e| e.kind == SagaEventKind::Completed)
            .count(),
        1,
        "{after:?}"
    );
    let agents_log = agents.log_text();
    assert!(
        !agents_log.contains("command refused"),
        "the agents took Aura's commands:\n{agents_log}"
    );
    drop(agents);
    drop(service);
}
