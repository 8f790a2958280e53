//! Chaos on the real broker, short variants (the long ones: `scripts/chaos`). Each scenario
//! runs sagas under load while a fault strikes, then checks that no anomaly was lost, no saga
//! event or command was written twice (read_committed), and every saga ended.
//!
//! These tests stop and start the broker of the stack they run on (`scripts/stack broker`), so
//! they take it one at a time, and they need `AURA_STACK_DIR` (set by `scripts/test`).

mod common;
// Shared with tests/saga_failures.rs, which uses all of it.
#[allow(dead_code)]
#[path = "saga_failures/history.rs"]
mod history;
#[path = "chaos/scenario.rs"]
mod scenario;

use std::time::Duration;

use common::*;
use scenario::*;

/// The broker dies (SIGKILL) with sagas in flight and comes back on its data 3 s later.
#[tokio::test(flavor = "multi_thread")]
async fn broker_sigkill_and_restart_mid_load() {
    let _broker = one_at_a_time().await;
    let mut s = Scenario::new("chaos-kill", 3, "").await;
    s.start_ready("kill-a").await;
    let producing = s.produce(200 * scale(), 40.0);
    s.wait_for_progress().await;
    let down = Fault::strike(&["broker", "kill"], &["broker", "start"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::spawn_blocking(|| down.heal()).await.unwrap();
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    assert!(s.services.pop().unwrap().stop().success());
    s.finish().await;
}

/// The broker freezes (SIGSTOP) for 20 s, longer than the session timeout, then goes on.
///
/// Not in CI for now: on the loaded shared machine it twice left sagas that never ended within
/// 180 s after the broker woke (out of about ten runs; the other failures seen, a start-up that
/// exited while the broker was frozen, are fixed). The cause is not found; it is an open
/// finding of issue 13, and `scripts/chaos broker_sigstop` runs it.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "open finding (issue 13): sagas may never end after a broker stall; run by scripts/chaos"]
async fn broker_sigstop_for_20_s_mid_load() {
    let _broker = one_at_a_time().await;
    let mut s = Scenario::new("chaos-pause", 3, "").await;
    s.start_ready("pause-a").await;
    let producing = s.produce(200 * scale(), 40.0);
    s.wait_for_progress().await;
    let frozen = Fault::strike(&["broker", "pause"], &["broker", "resume"]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    frozen.heal();
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    assert!(s.services.pop().unwrap().stop().success());
    s.finish().await;
}

/// An instance frozen (SIGSTOP) past its session timeout loses its partitions to the other;
/// woken, its due timers must not commit: it is fenced by its stale group generation.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_instance_writes_nothing_after_its_partitions_moved() {
    let _broker = one_at_a_time().await;
    let extra = "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n";
    let agents = [
        "--failure-rate",
        "0",
        "--silence-rate",
        "0.3",
        "--latency-ms",
        "5..50",
    ];
    let mut s = Scenario::with("chaos-freeze", 4, "chaos-timers", &agents, extra).await;
    let frozen = s.start("freeze-a");
    s.start("freeze-b");
    let producing = s.produce(150 * scale(), 50.0);
    s.wait_for_progress().await;
    signal(&s.services[frozen], "STOP");
    // Past the session timeout, and past the two-second step timeouts it holds.
    tokio::time::sleep(Duration::from_secs(15)).await;
    signal(&s.services[frozen], "CONT");
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    for service in s.services.drain(..) {
        assert!(service.stop().success());
    }
    s.finish().await;
}

/// Two instances share one instance id (so one transactional id): they fence each other,
/// and still nothing is written twice.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_with_one_instance_id_write_nothing_twice() {
    let _broker = one_at_a_time().await;
    let mut s = Scenario::new("chaos-twins", 3, "").await;
    s.start("twin");
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.start("twin");
    let n = s.produce(150 * scale(), 50.0).await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    let fenced = s
        .services
        .iter()
        .any(|svc| svc.log_text().to_lowercase().contains("fenced"));
    assert!(fenced, "neither twin was fenced\n{}", s.logs());
    s.finish().await;
}

/// A backlog bigger than the per-partition queue pauses the partition; a rebalance (a standby
/// joins) revokes and re-assigns it, and it must resume: every command arrives, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_partition_resumes_after_a_rebalance() {
    let _broker = one_at_a_time().await;
    let topics = TestTopics::new("chaos-backlog");
    create_topic(&topics.anomalies, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    // About twice the queue bound (4,096): the partition pauses within a second, since the
    // consumer fetches far faster than a task processes.
    let n = 8_000;
    let ids = produce_anomalies_from(&topics.anomalies, n, 50, 31).await;
    let first = Service::start(&config, "backlog-a", dir.path());
    // Wait until it is working through the backlog, with far more fetched than its queue holds.
    wait_for_log(&first, "partitions assigned", Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby = Service::start(&config, "backlog-b", dir.path());
    let address = http_address(&standby);
    // Each anomaly in exactly one command or correlation event (50 keys: most join incidents).
    // A debug build on a loaded 2-core machine processes some 50 records/s: the wait ends
    // as soon as every anomaly is seen, so only a failing run waits this long.
    let seen = accounted_anomalies(
        &topics,
        ids.len(),
        Duration::from_secs(5),
        Duration::from_secs(400),
    )
    .await;
    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let twice = seen.values().filter(|c| **c > 1).count();
    assert_eq!(
        (missing, twice),
        (0, 0),
        "missing, duplicated of {n}\n{}",
        first.log_text()
    );
    // The second instance is ready: a standby, or the owner of a partition of another input
    // (feedback, the control-plane tables), since the group spans every declared input.
    let body = readyz(&address).await;
    assert!(
        body.0 == 200 && (body.1.contains("standby") || body.1.contains("partitions")),
        "the second instance is ready: {body:?}"
    );
    assert!(first.stop().success());
    assert!(standby.stop().success());
    delete_topics_of(&topics.anomalies).await;
}

fn wait_for_log(service: &Service, text: &str, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while !service.log_text().contains(text) {
        assert!(
            std::time::Instant::now() < deadline,
            "never logged {text:?}:\n{}",
            service.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn readyz(address: &str) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("http://{address}/readyz")).await {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if status == 200 || std::time::Instant::now() > deadline {
                return (status, body);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `aura produce --transactional-id` rides through a broker restart: it finishes, and every
/// record is on the topic exactly once under read_committed. It used to hang until killed, and
/// without transactions (an idempotent producer only) one run in four wrote a record twice.
#[tokio::test(flavor = "multi_thread")]
async fn aura_produce_rides_through_a_broker_restart() {
    let _broker = one_at_a_time().await;
    let topic = unique("chaos-produce");
    create_topic(&topic, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, registry) = (bootstrap(), registry());
    let transactional_id = format!("{topic}-producer");
    let args = [
        "produce",
        "--bootstrap-servers",
        &bootstrap,
        "--schema-registry-url",
        &registry,
        "--topic",
        &topic,
        "--events",
        "1500",
        "--rate",
        "150",
        // A broker recovering many test topics on a loaded machine can take minutes.
        "--delivery-timeout-ms",
        "600000",
        "--transactional-id",
        &transactional_id,
    ];
    let mut producer = Service::spawn(&args, "produce", dir.path());
    // Struck once records flow, so some are in flight however slowly the producer starts.
    let flowing = topic.clone();
    let first = tokio::task::spawn_blocking(move || {
        read_committed(&flowing, Duration::from_secs(120), |r| !r.is_empty()).len()
    });
    assert!(
        first.await.unwrap() > 0,
        "aura produce published nothing\n{}",
        producer.log_text()
    );
    let down = Fault::strike(&["broker", "kill"], &["broker", "start"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(|| down.heal()).await.unwrap();
    let status = producer.wait(Duration::from_secs(600));
    let log = producer.log_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "aura produce did not finish well: {status:?}\n{log}"
    );
    assert!(log.contains("published 1500 records"), "{log}");
    let records = read_until_idle(
        &topic,
        1500,
        Duration::from_secs(3),
        Duration::from_secs(60),
    );
    let distinct: std::collections::HashSet<&[u8]> =
        records.iter().map(|r| r.value.as_slice()).collect();
    assert_eq!(distinct.len(), 1500, "every record arrived");
    assert_eq!(records.len(), 1500, "no record twice under read_committed");
    eprintln!(
        "aura produce: 1500 records, once each; {}",
        log.lines()
            .find(|l| l.contains("aborted and their records sent again"))
            .unwrap_or("no transaction aborted")
    );
    delete_topics_of(&topic).await;
}

/// Long variant only (`scripts/chaos`): the registry freezes for 30 s while records framed
/// with a writer schema the service has never seen arrive; they wait, none is dead-lettered.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by scripts/chaos"]
async fn registry_paused_for_30_s_with_new_writer_schemas() {
    let _broker = one_at_a_time().await;
    let mut s = Scenario::new("chaos-registry", 3, "").await;
    s.start("registry-a");
    let evolved = register_evolved_anomaly_schema(&s.topics.anomalies).await;
    let before = s.produce(100 * scale(), 40.0).await.unwrap();
    let frozen = Fault::strike(&["registry", "pause"], &["registry", "resume"]);
    let during = produce_evolved(&s.topics.anomalies, evolved, 100 * scale()).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    frozen.heal();
    s.verify((before + during) as usize, Duration::from_secs(240))
        .await;
    // Records were in flight: their decode waited on the frozen registry, and was retried.
    let waited = s.services[0].log_text().matches("decode retried").count();
    assert!(waited > 0, "no decode waited on the registry\n{}", s.logs());
    eprintln!("{during} records with a new writer schema, {waited} decode retries logged");
    let letters = read_until_idle(
        &s.topics.dlq,
        0,
        Duration::from_secs(2),
        Duration::from_secs(5),
    );
    assert!(
        letters.is_empty(),
        "{} records dead-lettered",
        letters.len()
    );
    assert!(s.services.pop().unwrap().stop().success());
    s.finish().await;
}

/// Long variant only (`scripts/chaos`): three instances under load, each restarted in turn
/// (SIGTERM), then one SIGKILLed and started again.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "long: run by scripts/chaos"]
async fn three_instances_rolling_restart_then_sigkill() {
    let _broker = one_at_a_time().await;
    let mut s = Scenario::new("chaos-rolling", 6, "").await;
    for id in ["roll-a", "roll-b", "roll-c"] {
        s.start(id);
    }
    let producing = s.produce(600 * scale(), 20.0);
    s.wait_for_progress().await;
    for (i, id) in ["roll-a", "roll-b", "roll-c"].iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(
            s.services.remove(i).stop().success(),
            "{id} stopped cleanly"
        );
        let service = Service::start(&s.config, id, s.dir.path());
        s.services.insert(i, service);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.services.remove(1).kill();
    let service = Service::start(&s.config, "roll-b", s.dir.path());
    s.services.insert(1, service);
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(240)).await;
    s.finish().await;
}

/// Registers TdaAnomaly with one more optional field (a compatible evolution) under the
/// topic's subject; returns its schema id.
async fn register_evolved_anomaly_schema(topic: &str) -> u32 {
    let json = aura::codec::by_name("aura.v1.TdaAnomaly").unwrap().json;
    let mut schema: serde_json::Value = serde_json::from_str(json).unwrap();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "chaos_note", "type": ["null", "string"], "default": null}
        ));
    let body = serde_json::json!({ "schema": schema.to_string() });
    let url = format!("{}/subjects/{topic}-value/versions", registry());
    let answer: serde_json::Value = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["id"]
        .as_u64()
        .expect("the registry gave the evolved schema an id") as u32
}

/// `n` anomalies framed with the evolved schema `id`: the original datum plus the new
/// field's null (its union index 0), which Avro appends at the end.
async fn produce_evolved(topic: &str, id: u32, n: u64) -> u64 {
    let codec = aura::codec::Codec::embedded();
    let producer: rdkafka::producer::FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let mut generator = aura::generator::Generator::new(77, 1_000_000_000_000_000, 0.0);
    for _ in 0..n {
        let a = generator.anomaly(aura::clock::now_ms());
        let plain = codec.encode(topic, &a).unwrap();
        let mut value = vec![0];
        value.extend_from_slice(&id.to_be_bytes());
        value.extend_from_slice(&plain[5..]);
        value.push(0);
        producer
            .send(
                rdkafka::producer::FutureRecord::to(topic)
                    .key(&a.correlation_id)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }
    n
}
