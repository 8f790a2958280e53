//! Helpers for tests against the real broker and registry started by `scripts/stack up`.
//! Each test gets fresh topics and a fresh group, so tests never see each other's records.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aura::codec::{AvroRecord, Codec};
use aura::generator::{Generator, Synthetic};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

/// The broker; a test that needs it fails loudly without it, never passes silently.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP").expect(
        "KAFKA_BOOTSTRAP is not set: run the tests with scripts/test, which starts a real broker",
    )
}

pub fn registry() -> String {
    std::env::var("SCHEMA_REGISTRY_URL")
        .expect("SCHEMA_REGISTRY_URL is not set: run the tests with scripts/test, which starts a real registry")
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Fresh topic names and group for one test.
pub struct TestTopics {
    pub anomalies: String,
    pub context: String,
    pub commands: String,
    pub dlq: String,
    pub results: String,
    pub votes: String,
    pub sagas: String,
    pub compensations: String,
    pub escalations: String,
    pub decisions: String,
    pub correlations: String,
    pub feedback: String,
    pub group: String,
}

impl TestTopics {
    pub fn new(test: &str) -> Self {
        let run = uuid::Uuid::new_v4().simple().to_string();
        let name = |t: &str| format!("{test}-{t}-{}", &run[..12]);
        Self {
            anomalies: name("anomalies"),
            context: name("context"),
            commands: name("commands"),
            dlq: name("dlq"),
            results: name("results"),
            votes: name("votes"),
            sagas: name("sagas"),
            compensations: name("compensations"),
            escalations: name("escalations"),
            decisions: name("decisions"),
            correlations: name("correlations"),
            feedback: name("feedback"),
            group: name("group"),
        }
    }

    /// A complete config file for `aura run` using these topics, with the defaults (sagas on).
    pub fn write_config(&self, dir: &Path, guarantee: &str) -> PathBuf {
        self.write_config_with(dir, guarantee, "")
    }

    /// `write_config` for the stateless pipeline: sagas off, so each valid anomaly gives exactly
    /// one command, which is what the pipeline tests count.
    pub fn write_stateless_config(&self, dir: &Path, guarantee: &str) -> PathBuf {
        self.write_config_with(dir, guarantee, "[sagas]\nenabled = false\n")
    }

    /// `write_config` with `extra` TOML appended, e.g. `[sagas]\nenabled = true`.
    pub fn write_config_with(&self, dir: &Path, guarantee: &str, extra: &str) -> PathBuf {
        let path = dir.join("aura.toml");
        let text = format!(
            r#"
[kafka]
"bootstrap.servers" = "{bootstrap}"
"group.id" = "{group}"
"processing.guarantee" = "{guarantee}"
"commit.interval.ms" = 5
"output.partitions" = 3

[schema_registry]
url = "{registry}"

[topics]
anomalies = "{anomalies}"
context = "{context}"
commands = "{commands}"
dead_letters = "{dlq}"
agent_results = "{results}"
agent_votes = "{votes}"
sagas = "{sagas}"
compensations = "{compensations}"
escalations = "{escalations}"
decisions = "{decisions}"
correlations = "{correlations}"
feedback = "{feedback}"

[http]
listen = "127.0.0.1:0"

{extra}
"#,
            bootstrap = bootstrap(),
            registry = registry(),
            group = self.group,
            anomalies = self.anomalies,
            context = self.context,
            commands = self.commands,
            dlq = self.dlq,
            results = self.results,
            votes = self.votes,
            sagas = self.sagas,
            compensations = self.compensations,
            escalations = self.escalations,
            decisions = self.decisions,
            correlations = self.correlations,
            feedback = self.feedback,
        );
        std::fs::write(&path, text).unwrap();
        path
    }
}

pub async fn create_topic(name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap();
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

/// Publishes `n` valid anomalies from `sources` distinct sources, as fast as possible.
pub async fn produce_anomalies_from(topic: &str, n: u64, sources: usize, seed: u64) -> Vec<String> {
    produce_with(topic, n, 0.0, 0.0, seed, sources).await
}

/// Publishes `n` generated records (with `bad_ratio` malformed ones) at about `rate`/s
/// (0: as fast as possible). Returns the anomaly ids of the valid ones.
pub async fn produce_anomalies(
    topic: &str,
    n: u64,
    rate: f64,
    bad_ratio: f64,
    seed: u64,
) -> Vec<String> {
    produce_with(topic, n, rate, bad_ratio, seed, 20).await
}

async fn produce_with(
    topic: &str,
    n: u64,
    rate: f64,
    bad_ratio: f64,
    seed: u64,
    sources: usize,
) -> Vec<String> {
    let codec = Codec::with_registry(&registry(), &[(topic, "aura.v1.TdaAnomaly")])
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let mut generator = Generator::new(seed, sources, bad_ratio);
    let mut good = Vec::new();
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        if rate > 0.0 {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
        }
        let record = generator.next_record(aura::clock::now_ms());
        if let Synthetic::Good(a) = &record {
            good.push(a.anomaly_id.clone());
        }
        let (key, value) = aura::cli::encode_synthetic(&codec, topic, record).unwrap();
        pending.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                .unwrap(),
        );
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    good
}

/// Every record of `topic`, read_committed and decoded, once at least `min` have come and the
/// topic has been quiet for two seconds (or thirty seconds passed).
pub async fn decode_topic<T: AvroRecord>(topic: &str, min: usize) -> Vec<T> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let records = read_until_idle(topic, min, Duration::from_secs(2), Duration::from_secs(30));
    let mut decoded = Vec::with_capacity(records.len());
    for r in &records {
        decoded.push(codec.decode(&r.value).await.unwrap());
    }
    decoded
}

/// A read_committed consumer of every partition of `topic` from the beginning. It assigns the
/// partitions itself rather than joining a group: after a broker stall a group join can take
/// minutes, and the reader is the measuring instrument, not the system under test. A topic the
/// service has not created yet is waited for.
pub fn committed_reader(topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let partitions = loop {
        let count = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
            .unwrap_or(0);
        if count > 0 {
            break count as i32;
        }
        assert!(Instant::now() < deadline, "topic {topic} never appeared");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    consumer
}

fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    Record {
        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: m.payload().unwrap_or_default().to_vec(),
    }
}

/// Reads `topic` with read_committed from the beginning until `done` says so or `timeout`.
pub fn read_committed(
    topic: &str,
    timeout: Duration,
    done: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let consumer = committed_reader(topic);
    let deadline = Instant::now() + timeout;
    let mut records = Vec::new();
    while Instant::now() < deadline && !done(&records) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            records.push(to_record(&m));
        }
    }
    records
}

/// Reads `topic` with read_committed from the beginning until at least `min` records have
/// arrived and then nothing new for `idle`, or until `timeout`. Waiting for quiet, not for a
/// count, is what lets a test see duplicates and late records.
pub fn read_until_idle(topic: &str, min: usize, idle: Duration, timeout: Duration) -> Vec<Record> {
    let consumer = committed_reader(topic);
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut records = Vec::new();
    while Instant::now() < deadline && !(records.len() >= min && last.elapsed() > idle) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            last = Instant::now();
            records.push(to_record(&m));
        }
    }
    records
}

pub struct Record {
    pub key: Option<String>,
    pub value: Vec<u8>,
}

/// Every anomaly the service accounted for, as an outside client sees it under read_committed
/// with sagas off: each anomaly id in a command (`orchestration.commands`: an incident's first
/// anomaly) or in a correlation event (`orchestration.correlations`: the anomalies that joined
/// it), with how often it appears there, so a duplicate shows. Reads until at least `min` ids
/// were seen and both topics were quiet for `idle`, or until `timeout`.
pub async fn accounted_anomalies(
    topics: &TestTopics,
    min: usize,
    idle: Duration,
    timeout: Duration,
) -> HashMap<String, usize> {
    use aura::model::{AgentCommand, CorrelationEvent};
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", unique("accounting"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer
        .subscribe(&[&topics.commands, &topics.correlations])
        .unwrap();
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut total = 0;
    while Instant::now() < deadline && !(total >= min && last.elapsed() > idle) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        last = Instant::now();
        let value = m.payload().unwrap_or_default();
        let ids = if m.topic() == topics.commands {
            let c: AgentCommand = codec.decode(value).await.unwrap();
            c.anomaly_ids
        } else {
            let e: CorrelationEvent = codec.decode(value).await.unwrap();
            e.anomaly_ids
        };
        for id in ids {
            total += 1;
            *seen.entry(id).or_default() += 1;
        }
    }
    seen
}

/// An `aura run` process.
pub struct Service {
    child: Child,
    pub log: PathBuf,
}

impl Service {
    pub fn start(config: &Path, instance_id: &str, log_dir: &Path) -> Self {
        let config = config.to_str().unwrap();
        Self::spawn(
            &["run", "--config", config, "--instance-id", instance_id],
            instance_id,
            log_dir,
        )
    }

    /// Any `aura` subcommand as a background process, logging to a file in `log_dir`.
    pub fn spawn(args: &[&str], name: &str, log_dir: &Path) -> Self {
        Self::spawn_with_env(args, name, log_dir, &[])
    }

    /// [`Service::spawn`] with extra environment variables (e.g. OTLP export settings).
    pub fn spawn_with_env(args: &[&str], name: &str, log_dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = log_dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).unwrap();
        // AURA_BIN runs the tests against another build, e.g. to show a fault on the code
        // before its fix.
        let bin = std::env::var("AURA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_aura").into());
        let child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .env("AURA_LOG", "info,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit by itself; `None` if it did not (it is
    /// then killed when dropped).
    pub fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL: no chance to commit or clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit. A service still running after 30 s fails the test
    /// (and is killed), rather than hanging the suite.
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not stop within 30 s of SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts of each value in `items`.
pub fn counts<T: std::hash::Hash + Eq>(items: impl IntoIterator<Item = T>) -> HashMap<T, usize> {
    let mut m = HashMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

/// The address an `aura run` started with `http.listen = "127.0.0.1:0"` bound, from its log.
pub fn http_address(service: &Service) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = service.log_text();
        if let Some(line) = log.lines().find(|l| l.contains("http listening")) {
            let addr = line.split("address=").nth(1).unwrap();
            let addr = addr.split_whitespace().next().unwrap();
            // The log may color the value: keep the address's own characters.
            return addr
                .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
                .to_string();
        }
        assert!(Instant::now() < deadline, "service never listened:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The address a service logged on its `marker` line (`address=...`), e.g. `aura lag --serve`'s
/// "lag exporter listening".
pub fn logged_address(service: &Service, marker: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = service.log_text();
        if let Some(line) = log.lines().find(|l| l.contains(marker)) {
            let addr = line.split("address=").nth(1).unwrap();
            let addr = addr.split_whitespace().next().unwrap();
            return addr
                .trim_matches(|c: char| !c.is_ascii_digit() && c != '.' && c != ':')
                .to_string();
        }
        assert!(Instant::now() < deadline, "{marker:?} never logged:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Simulated agents (`aura agents`) answering the commands of `topics`' service, each after
/// `latency_ms` (e.g. "300..1500"), failing at `failure_rate`.
pub fn start_simulated_agents(
    topics: &TestTopics,
    dir: &Path,
    failure_rate: &str,
    latency_ms: &str,
) -> Service {
    let behaviour = ["--latency-ms", latency_ms, "--failure-rate", failure_rate];
    start_agents_with(topics, dir, &behaviour)
}

/// Simulated agents (`aura agents`) on `topics`, behaving as `behaviour` (its flags) says.
pub fn start_agents_with(topics: &TestTopics, dir: &Path, behaviour: &[&str]) -> Service {
    let (bootstrap, registry) = (bootstrap(), registry());
    let group = format!("{}-agents", topics.group);
    let mut args = vec![
        "agents",
        "--bootstrap-servers",
        &bootstrap,
        "--schema-registry-url",
        &registry,
        "--commands-topic",
        &topics.commands,
        "--compensations-topic",
        &topics.compensations,
        "--results-topic",
        &topics.results,
        "--votes-topic",
        &topics.votes,
        "--group-id",
        &group,
    ];
    args.extend_from_slice(behaviour);
    Service::spawn(&args, "agents", dir)
}
