//! Finding 3, its restore half: a changelog record the task cannot read back (a record of
//! another version, say) was dropped with its state and reported nowhere. Now it goes to the
//! dead-letter topic with its reason, a tombstone follows it, and the task goes on; a second
//! owner of the partition does not report it again.

use std::time::Duration;

use aura::codec::Codec;
use aura::generator::Generator;
use aura::model::{DeadLetter, DeadLetterStage, SagaEvent, SagaEventKind};
use aura::processor::{INCIDENT_STORE, SAGA_STORE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_changelog_record_is_dead_lettered_once_and_the_task_goes_on() {
    let topics = TestTopics::new("unreadable");
    create_topic(&topics.anomalies, 3).await;
    let incidents = format!("{}-{INCIDENT_STORE}-changelog", topics.group);
    let sagas = format!("{}-{SAGA_STORE}-changelog", topics.group);
    create_compacted(&[&incidents, &sagas]).await;
    // What an older or newer version might have left: one unreadable record per store, and an
    // unreadable one that a later tombstone of its key replaced (nothing was lost there).
    put(&incidents, "k-bad", Some(b"not json")).await;
    put(&incidents, "k-replaced", Some(b"{\"open\": 7}")).await;
    put(&incidents, "k-replaced", None).await;
    put(
        &sagas,
        "saga-bad",
        Some(br#"{"saga_id":"saga-bad","status":"Running"}"#),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    let first = Service::start(&config, "unreadable-0", dir.path());
    produce_from(&topics.anomalies, "svc-first").await;
    let started = sagas_started(&topics, 1).await;
    assert_eq!(started, 1, "the task went on: {}", first.log_text());
    let letters = dead_letters(&topics, 2).await;
    let mut keys: Vec<&str> = letters.iter().map(|l| l.1.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["k-bad", "saga-bad"], "{letters:?}");
    for (letter, key) in &letters {
        assert_eq!(letter.error_class, "changelog_unreadable");
        assert_eq!(letter.stage, DeadLetterStage::Decode);
        let changelog = if key == "k-bad" { &incidents } else { &sagas };
        assert_eq!(&letter.topic, changelog);
        assert!(letter.value.is_some(), "the record is kept: {letter:?}");
    }
    let reason = |key: &str| &letters.iter().find(|l| l.1 == key).unwrap().0.reason;
    assert!(
        reason("saga-bad").starts_with("not a saga state"),
        "{}",
        reason("saga-bad")
    );
    assert!(reason("k-bad").starts_with("not an incident store record"));
    // Each lost key now ends in a tombstone, so the changelog says what memory holds.
    for (changelog, key) in [(&incidents, "k-bad"), (&sagas, "saga-bad")] {
        let records = read_until_idle(
            changelog,
            1,
            Duration::from_secs(2),
            Duration::from_secs(20),
        );
        let last = records.iter().rev().find(|r| r.key.as_deref() == Some(key));
        assert!(
            last.is_some_and(|r| r.value.is_empty()),
            "no tombstone for {key}"
        );
    }
    assert!(first.stop().success());

    // A second owner restores the same changelogs: the tombstones say the keys are gone, so no
    // second dead letter; and it goes on too.
    let second = Service::start(&config, "unreadable-1", dir.path());
    produce_from(&topics.anomalies, "svc-second").await;
    let started = sagas_started(&topics, 2).await;
    assert_eq!(started, 2, "{}", second.log_text());
    let letters = dead_letters(&topics, 2).await;
    assert_eq!(letters.len(), 2, "reported once: {letters:?}");
    assert!(second.stop().success());
}

/// Compacted, with the 3 partitions of the service's other internal topics (`output.partitions`).
async fn create_compacted(names: &[&str]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"))
        .collect();
    for r in admin
        .create_topics(&topics, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// A few anomalies about `source`, which no earlier one was about: a saga of their own.
async fn produce_from(topic: &str, source: &str) {
    let codec = Codec::with_registry(&registry(), &[(topic, "aura.v1.TdaAnomaly")])
        .await
        .unwrap();
    let mut generator = Generator::new(11, 1, 0.0);
    for _ in 0..3 {
        let mut a = generator.anomaly(aura::clock::now_ms());
        a.source = source.to_string();
        a.correlation_id = source.to_string();
        let value = codec.encode(topic, &a).unwrap();
        put(topic, source, Some(&value)).await;
    }
}

async fn put(topic: &str, key: &str, value: Option<&[u8]>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let mut record = FutureRecord::<str, [u8]>::to(topic).key(key);
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .unwrap();
}

/// The sagas started so far, once at least `min` have.
async fn sagas_started(topics: &TestTopics, min: usize) -> usize {
    // Counted by STARTED events, not by events: the first saga's later events would otherwise
    // satisfy `min` before the second saga has started.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let events: Vec<SagaEvent> = decode_topic(&topics.sagas, 1).await;
        let started = events
            .iter()
            .filter(|e| e.kind == SagaEventKind::Started)
            .count();
        if started >= min || std::time::Instant::now() > deadline {
            return started;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every dead letter so far, with its key, once at least `min` have come.
async fn dead_letters(topics: &TestTopics, min: usize) -> Vec<(DeadLetter, String)> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let records = read_until_idle(
        &topics.dlq,
        min,
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    let mut letters = Vec::new();
    for r in records {
        let letter: DeadLetter = codec.decode(&r.value).await.unwrap();
        letters.push((letter, r.key.unwrap_or_default()));
    }
    letters
}
