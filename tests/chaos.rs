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

/// The broker dies (SIGKILL) with transactions open and comes back on its data 3 s later.
#[tokio::test(flavor = "multi_thread")]
async fn broker_sigkill_and_restart_mid_load() {
    let _broker = one_at_a_time();
    let mut s = Scenario::new("chaos-kill", 3, "").await;
    s.start("kill-a");
    let producing = s.produce(200, 40.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack(&["broker", "kill"]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::spawn_blocking(|| stack(&["broker", "start"]))
        .await
        .unwrap();
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    assert!(s.services.pop().unwrap().stop().success());
}

/// The broker freezes (SIGSTOP) for 20 s, longer than the session timeout, then goes on.
#[tokio::test(flavor = "multi_thread")]
async fn broker_sigstop_for_20_s_mid_load() {
    let _broker = one_at_a_time();
    let mut s = Scenario::new("chaos-pause", 3, "").await;
    s.start("pause-a");
    let producing = s.produce(200, 40.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack(&["broker", "pause"]);
    tokio::time::sleep(Duration::from_secs(20)).await;
    stack(&["broker", "resume"]);
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    assert!(s.services.pop().unwrap().stop().success());
}

/// An instance frozen (SIGSTOP) past its session timeout loses its partitions to the other;
/// woken, its due timers must not commit: it is fenced by its stale group generation.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_instance_writes_nothing_after_its_partitions_moved() {
    let _broker = one_at_a_time();
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
    let producing = s.produce(150, 50.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal(&s.services[frozen], "STOP");
    // Past the session timeout, and past the two-second step timeouts it holds.
    tokio::time::sleep(Duration::from_secs(15)).await;
    signal(&s.services[frozen], "CONT");
    let n = producing.await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    for service in s.services.drain(..) {
        assert!(service.stop().success());
    }
}

/// Two instances share one instance id (so one transactional id): they fence each other,
/// and still nothing is written twice.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_with_one_instance_id_write_nothing_twice() {
    let _broker = one_at_a_time();
    let mut s = Scenario::new("chaos-twins", 3, "").await;
    s.start("twin");
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.start("twin");
    let n = s.produce(150, 50.0).await.unwrap();
    s.verify(n as usize, Duration::from_secs(180)).await;
    let fenced = s
        .services
        .iter()
        .any(|svc| svc.log_text().to_lowercase().contains("fenced"));
    assert!(fenced, "neither twin was fenced\n{}", s.logs());
}

/// A backlog bigger than the per-partition queue pauses the partition; a rebalance (a standby
/// joins) revokes and re-assigns it, and it must resume: every command arrives, once.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_partition_resumes_after_a_rebalance() {
    let _broker = one_at_a_time();
    let topics = TestTopics::new("chaos-backlog");
    create_topic(&topics.anomalies, 1).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let n = 12_000;
    let ids = produce_anomalies_from(&topics.anomalies, n, 50, 31).await;
    let first = Service::start(&config, "backlog-a", dir.path());
    // Wait until it is working through the backlog, with far more fetched than its queue holds.
    wait_for_log(&first, "partitions assigned", Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let standby = Service::start(&config, "backlog-b", dir.path());
    let address = http_address(&standby);
    let records = read_until_idle(
        &topics.commands,
        ids.len(),
        Duration::from_secs(5),
        Duration::from_secs(120),
    );
    let body = readyz(&address).await;
    assert!(
        body.0 == 200 && body.1.contains("standby"),
        "the idle instance is a ready standby: {body:?}"
    );
    let codec = aura::codec::Codec::with_registry(&registry(), &[])
        .await
        .unwrap();
    let mut seen = Vec::new();
    for r in &records {
        let c: aura::model::AgentCommand = codec.decode(&r.value).await.unwrap();
        seen.extend(c.anomaly_ids);
    }
    let seen = counts(seen);
    let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
    let twice = seen.values().filter(|c| **c > 1).count();
    assert_eq!(
        (missing, twice),
        (0, 0),
        "missing, duplicated of {n}\n{}",
        first.log_text()
    );
    assert!(first.stop().success());
    assert!(standby.stop().success());
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

/// `aura produce` rides through a broker restart: it finishes, every record is on the topic
/// once (idempotent producer), and it says so. It used to hang until killed.
#[tokio::test(flavor = "multi_thread")]
async fn aura_produce_rides_through_a_broker_restart() {
    let _broker = one_at_a_time();
    let topic = unique("chaos-produce");
    create_topic(&topic, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let (bootstrap, registry) = (bootstrap(), registry());
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
    ];
    let mut producer = Service::spawn(&args, "produce", dir.path());
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack(&["broker", "kill"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(|| stack(&["broker", "start"]))
        .await
        .unwrap();
    let status = producer.wait(Duration::from_secs(120));
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
    assert_eq!(records.len(), 1500, "every record once");
}
