//! The anomaly-to-command pipeline against the real broker and registry (`scripts/test`).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use aura::codec::Codec;
use aura::generator::{damage, damage_bytes, Generator, Synthetic, BAD_KINDS};
use aura::model::{AgentCommand, DeadLetter, DeadLetterStage};
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

async fn decode_commands(codec: &Codec, records: &[Record]) -> Vec<AgentCommand> {
    let mut out = Vec::new();
    for r in records {
        out.push(
            codec
                .decode::<AgentCommand>(&r.value)
                .await
                .expect("commands decode"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn n_anomalies_in_are_each_in_one_command_or_correlation_with_metrics_and_readiness() {
    let topics = TestTopics::new("pipeline");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let ids = produce_anomalies(&topics.anomalies, 300, 0.0, 0.0, 11).await;
    let service = Service::start(&config, "pipeline-0", dir.path());

    // 300 anomalies about 20 correlation keys: each key's storm is one incident, so one
    // command each, and every other anomaly is in a correlation event.
    let seen = accounted_anomalies(
        &topics,
        300,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(seen.len(), 300, "log:\n{}", service.log_text());
    assert!(seen.values().all(|n| *n == 1), "an anomaly accounted twice");
    assert_eq!(
        seen.keys().cloned().collect::<HashSet<_>>(),
        ids.into_iter().collect::<HashSet<_>>()
    );
    let records = read_committed(&topics.commands, Duration::from_secs(10), |r| r.len() >= 20);
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let commands = decode_commands(&codec, &records).await;
    assert_eq!(commands.len(), 20, "one command per incident");
    for (c, r) in commands.iter().zip(&records) {
        assert!(!c.explanation.is_empty() && !c.command_id.is_empty() && c.deadline > c.issued_at);
        assert_eq!(
            r.key.as_deref(),
            Some(c.partition_key.as_str()),
            "keyed by the correlation key"
        );
        assert_eq!(c.partition_key, c.correlation_id);
        assert!(
            c.saga_id.starts_with(&format!("{}@", c.correlation_id)),
            "{}",
            c.saga_id
        );
    }

    let base = format!("http://{}", http_address(&service));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!(
        "aura_records_in_total{{topic=\"{}\"}} 300",
        topics.anomalies
    );
    assert!(metrics.contains(&line), "{metrics}");
    assert!(
        metrics.contains("aura_transactions_total{outcome=\"committed\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("aura_processing_seconds_bucket"),
        "{metrics}"
    );
    // One route decision per valid anomaly, from the cache or computed.
    let lookups: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("aura_route_cache_lookups_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(lookups, 300.0, "{metrics}");
    // Consumer lag comes with librdkafka's statistics, every 5 s: each of the three anomaly
    // partitions shows up, consumed to its end.
    let lag_series = |metrics: &str| -> Vec<i64> {
        metrics
            .lines()
            .filter(|l| l.starts_with("aura_consumer_lag{") && l.contains(&topics.anomalies))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse().ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut lag = lag_series(&metrics);
    while lag.len() < 3 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = reqwest::get(format!("{base}/metrics")).await.unwrap();
        lag = lag_series(&text.text().await.unwrap());
    }
    assert_eq!(lag, vec![0, 0, 0], "consumer lag per anomaly partition");
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{base}/readyz"))
            .await
            .unwrap()
            .status(),
        200
    );

    let status = service.stop();
    assert!(status.success(), "SIGTERM should stop cleanly: {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_context_record_goes_to_the_dlq_and_the_table_loads_without_it() {
    let topics = TestTopics::new("context-poison");
    create_topic(&topics.anomalies, 3).await;
    create_topic(&topics.context, 1).await;
    let poison = b"not a TdaContext".to_vec();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topics.context)
                .key("svc-poison")
                .payload(&poison),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let service = Service::start(&config, "context-poison-0", dir.path());

    let letters = read_committed(&topics.dlq, Duration::from_secs(30), |r| !r.is_empty());
    assert_eq!(letters.len(), 1, "log:\n{}", service.log_text());
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let letter: DeadLetter = codec.decode(&letters[0].value).await.unwrap();
    assert_eq!(letter.topic, topics.context);
    assert_eq!(letter.stage, DeadLetterStage::Decode);
    assert_eq!(letter.error_class, "no_magic_byte");
    assert_eq!(letter.key.as_deref(), Some(b"svc-poison".as_slice()));
    assert_eq!(letter.value.as_deref(), Some(poison.as_slice()));
    // The table loaded past it: the instance is ready.
    let base = format!("http://{}", http_address(&service));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(service.stop().success());
}

/// Produces `n` anomalies at `rate` while the service runs, SIGKILLs it midway, restarts it,
/// and returns how often each anomaly id appears in the committed commands.
async fn kill_and_restart(
    guarantee: &str,
    n: u64,
) -> (Vec<String>, std::collections::HashMap<String, usize>) {
    let topics = TestTopics::new(&format!("kill-{}", guarantee.replace('_', "")));
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), guarantee);
    let producing = tokio::spawn({
        let topic = topics.anomalies.clone();
        async move { produce_anomalies(&topic, n, 1500.0, 0.0, 23).await }
    });
    let first = Service::start(&config, "victim", dir.path());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    first.kill();
    let second = Service::start(&config, "victim", dir.path());
    let ids = producing.await.unwrap();
    let seen = accounted_anomalies(
        &topics,
        n as usize,
        Duration::from_secs(3),
        Duration::from_secs(90),
    )
    .await;
    let log = second.log_text();
    second.stop();
    assert!(!seen.is_empty(), "no commands; log:\n{log}");
    (ids, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_v2_has_no_duplicates_across_a_sigkill() {
    let (ids, seen) = kill_and_restart("exactly_once_v2", 4000).await;
    let missing: Vec<_> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        duplicated.is_empty(),
        "{} duplicated: {:?}",
        duplicated.len(),
        &duplicated[..duplicated.len().min(5)]
    );
    assert_eq!(seen.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_loses_nothing_across_a_sigkill() {
    let (ids, seen) = kill_and_restart("at_least_once", 4000).await;
    let missing: Vec<_> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} lost: {:?}",
        missing.len(),
        ids.len(),
        &missing[..missing.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_input_class_lands_in_the_dlq_and_the_good_records_around_it_are_processed() {
    let topics = TestTopics::new("dlq");
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
    let mut generator = Generator::new(5, 3, 0.0);
    let mut good = Vec::new();
    let mut sent_bad = Vec::new();
    let now = aura::clock::now_ms();
    for kind in BAD_KINDS {
        for bad in [false, true] {
            let mut a = generator.anomaly(now);
            let (record, expect_bad) = if bad {
                (damage(*kind, &mut a, now), true)
            } else {
                (Synthetic::Good(a), false)
            };
            let (anomaly, bytes_kind) = match record {
                Synthetic::Good(a) | Synthetic::BadContent(_, a) => (a, None),
                Synthetic::BadBytes(k, a) => (a, Some(k)),
            };
            let mut key = anomaly.correlation_id.clone().into_bytes();
            let mut value = codec.encode(&topics.anomalies, &anomaly).unwrap();
            if let Some(k) = bytes_kind {
                damage_bytes(k, &mut key, &mut value);
            }
            if expect_bad {
                sent_bad.push((*kind, value.clone()));
            } else {
                good.push(anomaly.anomaly_id.clone());
            }
            producer
                .send(
                    FutureRecord::to(&topics.anomalies)
                        .key(&key)
                        .payload(&value),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let service = Service::start(&config, "dlq-0", dir.path());

    let letters = read_committed(&topics.dlq, Duration::from_secs(60), |r| {
        r.len() >= BAD_KINDS.len()
    });
    let seen = accounted_anomalies(
        &topics,
        good.len(),
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let log = service.log_text();
    assert_eq!(letters.len(), BAD_KINDS.len(), "log:\n{log}");
    let reader = Codec::with_registry(&registry(), &[]).await.unwrap();
    let mut letters_decoded = Vec::new();
    for r in &letters {
        letters_decoded.push(reader.decode::<DeadLetter>(&r.value).await.unwrap());
    }
    // The DLQ has several partitions, so letters arrive in key order per partition only:
    // match each to the record it came from by its original bytes.
    for (kind, value) in &sent_bad {
        let letter = letters_decoded
            .iter()
            .find(|l| l.value.as_deref() == Some(value.as_slice()))
            .unwrap_or_else(|| panic!("{kind:?}: no dead letter carries the original bytes"));
        assert_eq!(letter.topic, topics.anomalies);
        assert!(!letter.reason.is_empty() && !letter.error_class.is_empty());
        let expected_stage = match kind {
            aura::generator::BadKind::NoMagicByte
            | aura::generator::BadKind::UnknownSchemaId
            | aura::generator::BadKind::TruncatedAvro
            | aura::generator::BadKind::EmptyKey => DeadLetterStage::Decode,
            _ => DeadLetterStage::Validate,
        };
        assert_eq!(letter.stage, expected_stage, "{kind:?}: {}", letter.reason);
    }
    let classes: HashSet<&str> = letters_decoded
        .iter()
        .map(|l| l.error_class.as_str())
        .collect();
    for class in [
        "no_magic_byte",
        "unknown_schema_id",
        "missing_id",
        "score_out_of_range",
        "death_before_birth",
        "diagram_too_large",
        "future_timestamp",
        "empty_key",
    ] {
        assert!(classes.contains(class), "{class} missing from {classes:?}");
    }
    let accounted: HashSet<String> = seen.into_keys().collect();
    assert_eq!(accounted, good.into_iter().collect::<HashSet<_>>());
    service.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_input_topic_is_created_co_partitioned_and_read() {
    let topics = TestTopics::new("late-topic");
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let service = Service::start(&config, "late-0", dir.path());
    // The anomaly topic does not exist: the service creates it with `output.partitions` (3),
    // so its incidents line up with it, and the producer's records are read once they come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids = produce_anomalies(&topics.anomalies, 50, 0.0, 0.0, 31).await;
    let seen: HashSet<String> =
        accounted_anomalies(&topics, 50, Duration::from_secs(2), Duration::from_secs(60))
            .await
            .into_keys()
            .collect();
    assert_eq!(
        seen,
        ids.into_iter().collect::<HashSet<_>>(),
        "log:\n{}",
        service.log_text()
    );
    assert!(service.stop().success());
}
