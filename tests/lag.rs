//! `aura lag` against the real broker, compared with Kafka's own `kafka-consumer-groups.sh
//! --describe` (its main class, `ConsumerGroupCommand`, from the jars `scripts/stack` caches) on the
//! same group: first with no member (committed offsets only, as when every instance is down; the
//! exporter `aura lag --serve` must then report the same lag), then with a live member that owns
//! every partition, one of which has no committed offset yet.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;

const PARTITIONS: i32 = 3;

/// (committed, end, lag) per (topic, partition); `None` where the tool shows `-`.
type Describe = BTreeMap<(String, i32), (Option<i64>, i64, Option<i64>)>;

fn aura_lag(group: &str) -> (Vec<Value>, Describe) {
    let out = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "lag",
            "--bootstrap-servers",
            &bootstrap(),
            "--group",
            group,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aura lag failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("aura lag --json is JSON");
    let described = rows
        .iter()
        .map(|r| {
            (
                (
                    r["topic"].as_str().unwrap().to_string(),
                    r["partition"].as_i64().unwrap() as i32,
                ),
                (
                    r["committed"].as_i64(),
                    r["end"].as_i64().unwrap(),
                    r["lag"].as_i64(),
                ),
            )
        })
        .collect();
    (rows, described)
}

/// Kafka's own tool: the java and jars `scripts/stack` uses.
fn kafka_describe(group: &str) -> Describe {
    let cache = std::env::var("AURA_STACK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/aura-stack")
        });
    let lib = cache.join("kafka-4.1.1/lib");
    assert!(
        lib.is_dir(),
        "{} is missing: scripts/stack up fetches Kafka's jars there",
        lib.display()
    );
    let java = std::env::var("AURA_STACK_JAVA").unwrap_or_else(|_| "java".into());
    let out = Command::new("timeout")
        .args(["60", &java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp"])
        .arg(format!("{}/*", lib.display()))
        .args([
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            &bootstrap(),
            "--describe",
            "--group",
            group,
        ])
        .output()
        .expect("run java (Kafka's ConsumerGroupCommand)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-consumer-groups --describe failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dash = |s: &str| (s != "-").then(|| s.parse::<i64>().unwrap());
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 6 && cols[0] == group)
        .map(|cols| {
            (
                (cols[1].to_string(), cols[2].parse().unwrap()),
                (dash(cols[3]), cols[4].parse().unwrap(), dash(cols[5])),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn aura_lag_matches_kafka_consumer_groups_describe() {
    let topics = TestTopics::new("lag");
    let topic = topics.anomalies.clone();
    create_topic(&topic, PARTITIONS).await;
    produce_anomalies_from(&topic, 300, 30, 7).await;
    let group = topics.group.clone();

    // Committed offsets for partitions 0 and 1 only, by a client that assigns rather than joins.
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(10))
        .unwrap();
    offsets
        .add_partition_offset(&topic, 1, Offset::Offset(0))
        .unwrap();
    committer.assign(&offsets).unwrap();
    committer.commit(&offsets, CommitMode::Sync).unwrap();
    drop(committer);

    let (rows, ours) = aura_lag(&group);
    let theirs = kafka_describe(&group);
    assert_eq!(ours, theirs, "no member: aura lag vs kafka-consumer-groups");
    assert_eq!(ours.len(), 2, "only the committed partitions: {rows:?}");
    let end: i64 = ours.values().map(|(_, end, _)| end).sum::<i64>();
    assert!(end > 0, "records were produced: {rows:?}");
    assert_eq!(ours[&(topic.clone(), 0)].0, Some(10));
    assert!(rows.iter().all(|r| r["owner"].is_null()), "{rows:?}");
    exporter_reports_while_nobody_consumes(&group, &theirs).await;
    watch_prints_a_json_array_per_refresh(&group, &rows);

    // A live member now owns all three partitions; partition 2 has no committed offset.
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .set("client.id", "lag-test-member")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    member.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while member.assignment().unwrap().count() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "the member got no assignment");
        let _ = member.poll(Duration::from_millis(100));
    }
    // Keep the member polling (and so in the group) while both tools read.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Pause so the records stay unconsumed: only the assignment matters here.
                member.pause(&member.assignment().unwrap()).unwrap();
                let _ = member.poll(Duration::from_millis(100));
            }
        })
    };
    let (rows, ours) = aura_lag(&group);
    let theirs = kafka_describe(&group);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    poller.join().unwrap();
    assert_eq!(
        ours, theirs,
        "a live member: aura lag vs kafka-consumer-groups"
    );
    assert_eq!(ours.len(), PARTITIONS as usize, "{rows:?}");
    assert_eq!(
        ours[&(topic.clone(), 2)].0,
        None,
        "partition 2 has no commit"
    );
    for r in &rows {
        let owner = r["owner"].as_str().unwrap_or_else(|| panic!("owned: {r}"));
        assert!(owner.starts_with("lag-test-member@"), "{r}");
    }
}

/// `--watch --json` prints one array per refresh, each the same as a single read (nothing moves).
fn watch_prints_a_json_array_per_refresh(group: &str, once: &[Value]) {
    use std::io::BufRead;
    let mut watch = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["lag", "--bootstrap-servers", &bootstrap(), "--group", group])
        .args(["--json", "--watch", "--interval-ms", "300"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    for refresh in 0..3 {
        let line = lines.next().expect("a line per refresh").unwrap();
        let rows: Vec<Value> = serde_json::from_str(&line).expect("each line is a JSON array");
        assert_eq!(rows, once, "refresh {refresh}");
    }
    watch.kill().unwrap();
    watch.wait().unwrap();
}

/// `aura lag --serve` with no member in the group (every instance down): its /metrics carries the
/// lag Kafka's tool reports, and every partition as unowned.
async fn exporter_reports_while_nobody_consumes(group: &str, expected: &Describe) {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = bootstrap();
    let exporter = Service::spawn(
        &[
            "lag",
            "--bootstrap-servers",
            &bootstrap,
            "--group",
            group,
            "--serve",
            "127.0.0.1:0",
        ],
        "lag-exporter",
        dir.path(),
    );
    let url = format!(
        "http://{}/metrics",
        logged_address(&exporter, "lag exporter listening")
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if text.contains("aura_group_lag{") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no aura_group_lag after 20 s:\n{text}\n{}",
            exporter.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for ((topic, partition), (_, _, lag)) in expected {
        let labels = format!(r#"{{group="{group}",partition="{partition}",topic="{topic}"}}"#);
        let lag = lag.expect("committed partitions have a lag");
        assert!(
            text.contains(&format!("aura_group_lag{labels} {lag}\n")),
            "{labels} lag {lag}:\n{text}"
        );
        assert!(
            text.contains(&format!("aura_group_partition_owned{labels} 0\n")),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!(r#"aura_group_members{{group="{group}"}} 0"#)),
        "{text}"
    );
    assert!(text.contains("process_start_time_seconds "), "{text}");
}

#[test]
fn aura_lag_names_an_unknown_group_and_exits_non_zero() {
    let group = unique("no-such-group");
    let out = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "lag",
            "--bootstrap-servers",
            &bootstrap(),
            "--group",
            &group,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("group {group} has no committed offsets")),
        "{stderr}"
    );
}
