//! Issue 13's findings, each reproduced on the real broker: the test shows the fault the
//! finding describes (it failed on the code before its fix) and that it is gone.

mod common;
#[path = "faults/unreadable_changelog.rs"]
mod unreadable_changelog;

use std::collections::HashMap;
use std::time::Duration;

use aura::codec::Codec;
use aura::config::{KafkaConfig, ProcessingGuarantee};
use aura::generator::Generator;
use aura::model::{AgentCommand, DeadLetter};
use aura::runtime::kafka::{clients, Committer};
use aura::runtime::{InputRecord, OutputRecord};
use aura::telemetry::Metrics;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

/// Finding 1: a record near 1 MB (a betti array of 300,000 numbers passed validation, and
/// the explanation repeated it) made an output the broker refused, and the stream loop
/// replayed it forever. Now the record is refused by a field cap and dead-lettered with its
/// payload cut; a record within every cap whose command would still exceed
/// `message.max.bytes` is dead-lettered too; and the good records after both are processed.
#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_record_is_dead_lettered_and_the_partition_goes_on() {
    let topics = TestTopics::new("oversized");
    create_topic(&topics.anomalies, 1).await;
    let codec = Codec::with_registry(
        &registry(),
        &[(topics.anomalies.as_str(), "aura.v1.TdaAnomaly")],
    )
    .await
    .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    // Every anomaly its own incident, so each good one gets a command of its own.
    let mut generator = Generator::new(3, 1 << 40, 0.0);
    let now = aura::clock::now_ms();
    let mut huge_betti = generator.anomaly(now);
    huge_betti.betti = vec![123_456; 300_000];
    // Within every cap (240 attributes of 4,000 bytes), but its command copies the
    // attributes: over the service's message.max.bytes of 500,000 below.
    let mut wide = generator.anomaly(now);
    wide.attributes = (0..240)
        .map(|i| (format!("k{i}"), "v".repeat(4000)))
        .collect();
    let good: Vec<_> = (0..5).map(|_| generator.anomaly(now)).collect();
    let mut sizes = Vec::new();
    for a in [&huge_betti, &wide].into_iter().chain(&good) {
        let value = codec.encode(&topics.anomalies, a).unwrap();
        sizes.push(value.len());
        producer
            .send(
                FutureRecord::to(&topics.anomalies)
                    .key(&a.correlation_id)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    assert!(
        sizes[0] > 500_000 && sizes[1] > 500_000,
        "the records are big: {sizes:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let extra =
        "[sagas]\nenabled = false\n\n[kafka.properties]\n\"message.max.bytes\" = \"500000\"\n";
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", extra);
    let service = Service::start(&config, "oversized", dir.path());
    let letters = read_committed(&topics.dlq, Duration::from_secs(60), |r| r.len() >= 2);
    let commands = read_committed(&topics.commands, Duration::from_secs(30), |r| {
        r.len() >= good.len()
    });
    let log = service.log_text();
    assert!(service.stop().success());

    assert_eq!(letters.len(), 2, "two dead letters\n{log}");
    assert_eq!(
        commands.len(),
        good.len(),
        "the good records after them were processed\n{log}"
    );
    let reader = Codec::with_registry(&registry(), &[]).await.unwrap();
    let mut classes = HashMap::new();
    for r in &letters {
        let letter: DeadLetter = reader.decode(&r.value).await.unwrap();
        assert!(
            r.value.len() < aura::dead_letter::MAX_KEPT_BYTES + 16_000,
            "the dead letter is small: {} bytes",
            r.value.len()
        );
        assert_eq!(
            letter.value.as_ref().unwrap().len(),
            aura::dead_letter::MAX_KEPT_BYTES
        );
        assert!(letter.reason.contains("fnv1a64"), "{}", letter.reason);
        assert_eq!(
            r.key.as_deref(),
            Some(letter_key(&letter).as_str()),
            "a dead letter keeps the key"
        );
        classes.insert(letter.error_class.clone(), letter.reason.clone());
    }
    assert!(
        classes["field_too_large"].starts_with("betti is 300000 numbers"),
        "{classes:?}"
    );
    assert!(
        classes["output_too_large"].contains("message.max.bytes 500000"),
        "{classes:?}"
    );
    for r in &commands {
        let c: AgentCommand = reader.decode(&r.value).await.unwrap();
        assert!(good.iter().any(|g| c.anomaly_ids.contains(&g.anomaly_id)));
    }
}

fn letter_key(letter: &DeadLetter) -> String {
    String::from_utf8(letter.key.clone().unwrap()).unwrap()
}

/// Finding 2: a task that failed after some of a record's outputs entered the transaction
/// broke the loop without an abort, and the revoke callback then committed the transaction
/// with those partial outputs. Now the committer is abandoned and the revocation aborts.
/// Runs on plain threads: the committer's blocking calls are for blocking threads.
#[test]
fn a_failed_records_partial_outputs_never_commit_on_revocation() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (input, output) = (unique("partial-in"), unique("partial-out"));
    rt.block_on(create_topic(&input, 1));
    rt.block_on(create_topic(&output, 1));
    let kafka = KafkaConfig {
        bootstrap_servers: bootstrap(),
        group_id: unique("partial"),
        processing_guarantee: ProcessingGuarantee::ExactlyOnceV2,
        ..KafkaConfig::default()
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    for i in 0..2 {
        let key = format!("k{i}");
        rt.block_on(producer.send(
            FutureRecord::to(&input).key(&key).payload("v"),
            Duration::from_secs(10),
        ))
        .unwrap();
    }
    let consumer: BaseConsumer = clients::stream_consumer(&kafka, "partial")
        .create()
        .unwrap();
    consumer.subscribe(&[&input]).unwrap();
    let mut inputs = Vec::new();
    while inputs.len() < 2 {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            inputs.push(InputRecord {
                topic: m.topic().into(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: None,
                timestamp_ms: None,
                headers: vec![],
            });
        }
    }
    let out = |v: &str| OutputRecord {
        partition: None,
        topic: output.clone(),
        key: Some(b"k".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: vec![],
    };
    let committer = Committer::new(
        kafka.processing_guarantee,
        |slot| clients::producer(&kafka, "partial", slot),
        Metrics::new(),
    )
    .unwrap();
    // The first record is whole and committed.
    committer.send(&out("whole")).unwrap();
    committer.record_done(&inputs[0]);
    assert!(committer.commit(&consumer).unwrap());
    // The second fails after one of its outputs was sent; then its partitions are revoked.
    committer.send(&out("partial")).unwrap();
    committer.abandon();
    assert!(
        !committer.commit_and_revoke(&consumer).unwrap(),
        "nothing commits on revocation"
    );
    let seen = read_committed(&output, Duration::from_secs(8), |_| false);
    let values: Vec<String> = seen
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_eq!(values, ["whole"], "the partial output stayed uncommitted");
    // The group resumes at the failed record.
    let committed = consumer.committed(Duration::from_secs(10)).unwrap();
    let next = committed.find_partition(&input, 0).unwrap().offset();
    assert_eq!(next, rdkafka::Offset::Offset(inputs[1].offset));
}

/// Finding 6: a commit with only timer outputs skipped `send_offsets_to_transaction`, so
/// nothing checked the group generation: a member that froze and lost its partitions could
/// still commit timer outputs on waking. Here member A stops polling past its poll
/// interval, member B takes the partition, and A's timer-only commit must fail and its
/// output stay invisible.
#[test]
fn a_timer_only_commit_of_a_member_that_lost_its_partitions_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (input, output) = (unique("zombie-in"), unique("zombie-out"));
    rt.block_on(create_topic(&input, 1));
    rt.block_on(create_topic(&output, 1));
    let mut kafka = KafkaConfig {
        bootstrap_servers: bootstrap(),
        group_id: unique("zombie"),
        processing_guarantee: ProcessingGuarantee::ExactlyOnceV2,
        ..KafkaConfig::default()
    };
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("max.poll.interval.ms", "7000"),
    ] {
        kafka.properties.insert(k.into(), v.into());
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    rt.block_on(producer.send(
        FutureRecord::to(&input).key("k").payload("v"),
        Duration::from_secs(10),
    ))
    .unwrap();
    let a: BaseConsumer = clients::stream_consumer(&kafka, "zombie-a")
        .create()
        .unwrap();
    a.subscribe(&[&input]).unwrap();
    let first = loop {
        if let Some(m) = a.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            break InputRecord {
                topic: m.topic().into(),
                partition: m.partition(),
                offset: m.offset(),
                key: None,
                value: None,
                timestamp_ms: None,
                headers: vec![],
            };
        }
    };
    let timer_output = |v: &str| OutputRecord {
        partition: None,
        topic: output.clone(),
        key: Some(b"saga".to_vec()),
        value: Some(v.as_bytes().to_vec()),
        headers: vec![],
    };
    let committer = Committer::new(
        kafka.processing_guarantee,
        |slot| clients::producer(&kafka, "zombie-a", slot),
        Metrics::new(),
    )
    .unwrap();
    committer.send(&timer_output("before")).unwrap();
    committer.record_done(&first);
    assert!(committer.commit(&a).unwrap());

    // A freezes (stops polling); B joins and, once A is dropped from the group, owns the partition.
    let b: BaseConsumer = clients::stream_consumer(&kafka, "zombie-b")
        .create()
        .unwrap();
    b.subscribe(&[&input]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while b.assignment().unwrap().count() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "B never got the partition"
        );
        b.poll(Duration::from_millis(100));
    }
    // A wakes up with a due timer: timer outputs only, no input offsets.
    committer.send(&timer_output("zombie")).unwrap();
    let result = committer.commit(&a);
    assert!(
        result.is_err(),
        "the zombie's timer-only commit was refused: {result:?}"
    );
    let seen = read_committed(&output, Duration::from_secs(8), |_| false);
    let values: Vec<String> = seen
        .iter()
        .map(|r| String::from_utf8_lossy(&r.value).into_owned())
        .collect();
    assert_eq!(values, ["before"], "nothing of the zombie's is visible");
}
