//! One chaos scenario: fresh topics, simulated agents that fail 5% of commands, services in one
//! group running the `completion` workflow, anomalies produced in the background at a steady
//! rate, and the checks every scenario ends with: nothing lost, nothing duplicated under
//! read_committed, every saga ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::generator::{Generator, Synthetic};
use aura::model::AgentCommand;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;

use crate::common::*;
use crate::history::*;

/// The broker is one for every test of this binary, and these tests stop it: one at a time.
/// tokio's lock: each test has its own runtime, and the guard is held across awaits.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    BROKER.lock().await
}

/// `scripts/stack <args>` on the stack the tests run against (`AURA_STACK_DIR`).
pub fn stack(args: &[&str]) {
    assert!(try_stack(args), "scripts/stack {args:?} failed");
}

fn try_stack(args: &[&str]) -> bool {
    let dir = std::env::var("AURA_STACK_DIR")
        .expect("AURA_STACK_DIR is not set: chaos tests stop the broker of the stack they run on; run them with scripts/test");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stack");
    Command::new("bash")
        .arg(script)
        .args(args)
        .env("AURA_STACK_DIR", dir)
        // A broker recovering hundreds of test partitions after SIGKILL, on a loaded machine,
        // can take minutes.
        .env("AURA_STACK_TIMEOUT", "300")
        .status()
        .is_ok_and(|s| s.success())
}

/// A fault struck on the stack (`broker kill`, `broker pause`, `registry pause`) that is
/// undone when dropped, even by a test that fails before undoing it: the tests after it, and
/// the test binaries after this one, must find the broker and the registry running.
pub struct Fault {
    undo: Option<&'static [&'static str]>,
}

impl Fault {
    /// Strikes `args`; `undo` is the command that heals it.
    pub fn strike(args: &[&str], undo: &'static [&'static str]) -> Self {
        stack(args);
        Self { undo: Some(undo) }
    }

    /// Heals the fault now (blocking: a broker start waits until the broker serves).
    pub fn heal(mut self) {
        if let Some(undo) = self.undo.take() {
            stack(undo);
        }
    }
}

impl Drop for Fault {
    fn drop(&mut self) {
        if let Some(undo) = self.undo.take() {
            // No assertion here: a panic while the test already panics would abort the run.
            if !try_stack(undo) {
                eprintln!("chaos: could not heal the stack with scripts/stack {undo:?}");
            }
        }
    }
}

pub struct Scenario {
    pub topics: TestTopics,
    pub config: PathBuf,
    pub agents: Service,
    pub services: Vec<Service>,
    pub dir: tempfile::TempDir,
    pub started: Instant,
}

impl Scenario {
    /// The `completion` workflow against agents that fail 5% of commands.
    pub async fn new(test: &str, partitions: i32, extra: &str) -> Self {
        Self::with(
            test,
            partitions,
            "completion",
            &["--failure-rate", "0.05", "--latency-ms", "5..50"],
            extra,
        )
        .await
    }

    /// Topics with `partitions` partitions, agents behaving as `agent_flags` say, and sagas
    /// running `tests/workflows/<workflow>`; `extra` is appended to the config.
    pub async fn with(
        test: &str,
        partitions: i32,
        workflow: &str,
        agent_flags: &[&str],
        extra: &str,
    ) -> Self {
        let topics = TestTopics::new(test);
        create_topic(&topics.anomalies, partitions).await;
        create_topic(&topics.results, partitions).await;
        let dir = tempfile::tempdir().unwrap();
        let workflows = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/workflows")
            .join(workflow);
        let sagas = format!(
            "[sagas]\nenabled = true\nworkflows = {:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n\n{extra}",
            workflows.display().to_string()
        );
        let config = topics.write_config_with(dir.path(), "exactly_once_v2", &sagas);
        let agents = start_agents_with(&topics, dir.path(), agent_flags);
        Self {
            topics,
            config,
            agents,
            services: Vec::new(),
            dir,
            started: Instant::now(),
        }
    }

    /// Starts an `aura run` with `instance_id`; returns its index in `services`.
    pub fn start(&mut self, instance_id: &str) -> usize {
        let service = Service::start(&self.config, instance_id, self.dir.path());
        self.services.push(service);
        self.services.len() - 1
    }

    /// [`Scenario::start`], then waits until the instance says it is ready (partitions
    /// assigned, stores restored), so that a fault struck afterwards meets work in flight rather
    /// than a service still starting.
    pub async fn start_ready(&mut self, instance_id: &str) -> usize {
        let index = self.start(instance_id);
        let address = http_address(&self.services[index]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = reqwest::get(format!("http://{address}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return index;
            }
            assert!(
                Instant::now() < deadline,
                "{instance_id} never became ready\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Produces `n` anomalies at `rate`/s in the background, each its own incident (so its own
    /// saga), with an idempotent producer that rides through a broker restart.
    pub fn produce(&self, n: u64, rate: f64) -> tokio::task::JoinHandle<u64> {
        let topic = self.topics.anomalies.clone();
        tokio::spawn(async move {
            let codec = Codec::with_registry(&registry(), &[(&topic, "aura.v1.TdaAnomaly")])
                .await
                .unwrap();
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap())
                .set("partitioner", "murmur2_random")
                .set("enable.idempotence", "true")
                .set("linger.ms", "1")
                .create()
                .unwrap();
            let mut generator = Generator::new(7, 1_000_000_000_000_000, 0.0);
            let started = Instant::now();
            let mut pending = Vec::new();
            for i in 0..n {
                tokio::time::sleep_until(
                    (started + Duration::from_secs_f64(i as f64 / rate)).into(),
                )
                .await;
                let record = generator.next_record(aura::clock::now_ms());
                assert!(matches!(record, Synthetic::Good(_)));
                let (key, value) = aura::cli::encode_synthetic(&codec, &topic, record).unwrap();
                pending.push(
                    producer
                        .send_result(FutureRecord::to(&topic).key(&key).payload(&value))
                        .unwrap(),
                );
            }
            for p in pending {
                p.await
                    .unwrap()
                    .expect("the test producer delivers every anomaly");
            }
            producer.flush(Duration::from_secs(60)).unwrap();
            n
        })
    }

    /// Waits until a first saga event is committed, so a fault struck next finds work in
    /// flight however slowly the services start on a loaded machine.
    pub async fn wait_for_progress(&self) {
        let sagas = self.topics.sagas.clone();
        let seen = tokio::task::spawn_blocking(move || {
            read_committed(&sagas, Duration::from_secs(120), |r| !r.is_empty()).len()
        })
        .await
        .unwrap();
        assert!(seen > 0, "no saga event within 120 s\n{}", self.logs());
    }

    /// Ends the scenario: what still runs is killed (a test stops, with its own assertion,
    /// the services whose clean stop it checks), then every topic of the test is deleted.
    pub async fn finish(self) {
        let Scenario {
            topics,
            agents,
            services,
            ..
        } = self;
        services.into_iter().for_each(Service::kill);
        agents.kill();
        delete_topics_of(&topics.anomalies).await;
    }

    /// Every service's and the agents' log tails, for a failed assertion.
    pub fn logs(&self) -> String {
        let tail = |t: String| {
            let from = t.len().saturating_sub(3000);
            let from = (from..t.len())
                .find(|i| t.is_char_boundary(*i))
                .unwrap_or(t.len());
            t[from..].to_string()
        };
        let mut out = String::new();
        for (i, s) in self.services.iter().enumerate() {
            out.push_str(&format!(
                "--- service {i} log (tail):\n{}\n",
                tail(s.log_text())
            ));
        }
        out.push_str(&format!(
            "--- agents log (tail):\n{}\n",
            tail(self.agents.log_text())
        ));
        out
    }

    /// The end of every scenario: `n` sagas started (none lost), each ended, no saga event and
    /// no command twice under read_committed.
    pub async fn verify(&self, n: usize, timeout: Duration) -> Histories {
        let histories =
            saga_histories(&self.topics.sagas, n, Duration::from_secs(3), timeout).await;
        let unended: Vec<&String> = histories
            .iter()
            .filter(|(_, h)| !h.iter().any(|e| is_terminal(e.kind)))
            .map(|(s, _)| s)
            .collect();
        assert_eq!(
            histories.len(),
            n,
            "sagas started (lost: {})\n{}",
            n as i64 - histories.len() as i64,
            self.logs()
        );
        // What the first unended sagas did last, so a failure explains itself.
        let stuck: Vec<String> = unended
            .iter()
            .take(3)
            .map(|saga| {
                let steps: Vec<String> = histories[*saga]
                    .iter()
                    .map(|e| format!("{:?} {:?} #{}", e.kind, e.step, e.attempt))
                    .collect();
                format!("{saga}: {}", steps.join(", "))
            })
            .collect();
        assert!(
            unended.is_empty(),
            "{} sagas never ended:\n{}\n{}",
            unended.len(),
            stuck.join("\n"),
            self.logs()
        );
        assert_eq!(
            duplicates(&histories),
            0,
            "duplicated saga events\n{}",
            self.logs()
        );
        let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
        let records = read_until_idle(
            &self.topics.commands,
            n,
            Duration::from_secs(2),
            Duration::from_secs(30),
        );
        let mut ids = Vec::with_capacity(records.len());
        for r in &records {
            let c: AgentCommand = codec.decode(&r.value).await.unwrap();
            ids.push(c.command_id);
        }
        let twice: Vec<_> = counts(ids).into_iter().filter(|(_, c)| *c > 1).collect();
        assert!(
            twice.is_empty(),
            "{} commands duplicated, e.g. {:?}",
            twice.len(),
            twice.first()
        );
        eprintln!(
            "{n} sagas ended, none lost or duplicated, {} commands, after {:?}",
            records.len(),
            self.started.elapsed()
        );
        histories
    }
}

/// How much bigger than the CI variant a run is: `AURA_CHAOS_SCALE` (default 1), set by
/// `scripts/chaos` for the long variants. Multiplies the anomalies produced.
pub fn scale() -> u64 {
    std::env::var("AURA_CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Sends `signal` (STOP, CONT, KILL) to a service.
pub fn signal(service: &Service, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &service.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Deletes every topic whose name holds the run id that ends `any_topic` (a test's own
/// topics and those its services created), so that a later broker restart in this binary has
/// fewer partitions to recover: after a SIGKILL the broker recovers every partition, and late
/// in a CI run that took minutes. Nothing may still use them: a client's metadata request
/// would create them again (the test stack auto-creates topics).
pub async fn delete_topics_of(any_topic: &str) {
    let run = &any_topic[any_topic.len().saturating_sub(12)..];
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(30))
        .expect("the broker lists its topics");
    let names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|name| name.ends_with(run) || name.contains(&format!("-{run}-")))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let deleted = admin
        .delete_topics(&names, &AdminOptions::new())
        .await
        .expect("the broker takes the deletion");
    for result in deleted {
        if let Err((topic, e)) = result {
            eprintln!("chaos: could not delete {topic}: {e}");
        }
    }
}
