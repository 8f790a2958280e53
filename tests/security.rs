//! Security on the real broker, started with `AURA_STACK_SECURE=1 scripts/stack up`: a SASL_SSL
//! listener with SCRAM-SHA-512 users `aura`, `agent` and `tda`, KRaft's StandardAuthorizer, and
//! the ACLs of `deploy/kafka-acls.sh` (applied here to each test's fresh topics, with the rules
//! `aura topology acls` derives from the test's config).
//!
//! These tests fail without the secure stack (KAFKA_SASL_BOOTSTRAP and friends unset); the
//! plaintext listener they also use to read results belongs to a super user.

mod common;
#[path = "support/keys.rs"]
mod keys;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{SagaEvent, SagaEventKind};
use common::*;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

fn secure_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: start the broker with AURA_STACK_SECURE=1 scripts/stack up and export its lines")
    })
}

struct Secure {
    bootstrap: String,
    ca: String,
    secrets: PathBuf,
    acls: String,
}

impl Secure {
    fn from_env() -> Self {
        Self {
            bootstrap: secure_env("KAFKA_SASL_BOOTSTRAP"),
            ca: secure_env("KAFKA_SSL_CA_LOCATION"),
            secrets: PathBuf::from(secure_env("KAFKA_SECRETS_DIR")),
            acls: secure_env("KAFKA_ACLS"),
        }
    }

    fn password_file(&self, user: &str) -> PathBuf {
        self.secrets.join(format!("{user}.password"))
    }

    fn password(&self, user: &str) -> String {
        std::fs::read_to_string(self.password_file(user))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Applies deploy/kafka-acls.sh, as a platform team would, with the rules `aura topology
    /// acls` derives from `config` (this test's topics, group and agents' group).
    fn grant(&self, topics: &TestTopics, config: &Path) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kafka-acls.sh");
        let output = Command::new("bash")
            .arg(script)
            .args(["--bootstrap-server", &bootstrap()])
            .args(["--config", config.to_str().unwrap()])
            .env("KAFKA_ACLS", &self.acls)
            .env("AURA_BIN", env!("CARGO_BIN_EXE_aura"))
            .env("AGENTS_GROUP_ID", format!("{}-agents", topics.group))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "deploy/kafka-acls.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A config for `aura run` as `user` over SASL_SSL: the password comes from its file.
    fn write_config(&self, topics: &TestTopics, dir: &Path, user: &str, extra: &str) -> PathBuf {
        let plain = topics.write_config_with(dir, "exactly_once_v2", "");
        let text = std::fs::read_to_string(&plain).unwrap().replace(
            &format!("\"bootstrap.servers\" = \"{}\"", bootstrap()),
            &format!("\"bootstrap.servers\" = \"{}\"", self.bootstrap),
        );
        let security = format!(
            r#"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "{user}"
"ssl.ca.location" = "{ca}"
# librdkafka's own debug logs of the handshake, so the log test sees them.
"debug" = "security,broker,conf"

[kafka.secrets]
"sasl.password" = {{ file = "{password}" }}
"#,
            ca = self.ca,
            password = self.password_file(user).display(),
        );
        // [kafka.properties] must follow [kafka]'s keys, before the next table.
        let text = text.replacen(
            "\n[schema_registry]",
            &format!("{security}\n[schema_registry]"),
            1,
        );
        let path = dir.join(format!("aura-{user}.toml"));
        std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
        path
    }
}

/// An `aura` process with its own environment, logging at every level to a file.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(args: &[&str], env: &[(&str, &str)], name: &str, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_aura"))
            .args(args)
            .env("AURA_LOG", "trace")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.log.display(),
                tail(&self.text())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait(Duration::from_secs(30));
    }

    /// Panics with the log's tail when the process has already exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.log.display(),
                tail(&self.text())
            );
        }
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines at INFO and above: the TRACE lines would bury them.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains(" TRACE ") && !l.contains(" DEBUG "))
        .collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn wait_for_terminal_sagas(
    topics: &TestTopics,
    min: usize,
    service: &mut Process,
) -> HashMap<String, SagaEventKind> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        service.assert_running();
        let records = read_until_idle(
            &topics.sagas,
            min,
            Duration::from_secs(2),
            Duration::from_secs(20),
        );
        let mut last = HashMap::new();
        for r in &records {
            let e: SagaEvent = codec.decode(&r.value).await.unwrap();
            let entry = last.entry(e.saga_id.clone()).or_insert(e.kind);
            if matches!(
                e.kind,
                SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
            ) {
                *entry = e.kind;
            }
        }
        let terminal = last
            .values()
            .filter(|k| {
                matches!(
                    k,
                    SagaEventKind::Completed | SagaEventKind::Compensated | SagaEventKind::Failed
                )
            })
            .count();
        if (last.len() >= min && terminal == last.len()) || Instant::now() > deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The whole pipeline over SASL_SSL: `aura produce` as `tda`, the service as `aura`, `aura agents`
/// as `agent`, each with only the ACLs deploy/kafka-acls.sh grants; every saga finishes. All three
/// log at TRACE (librdkafka's security debug included) and no password appears in any log.
#[tokio::test(flavor = "multi_thread")]
async fn sagas_run_end_to_end_over_sasl_ssl_with_acls_and_no_secret_is_logged() {
    let secure = Secure::from_env();
    let topics = TestTopics::new("secure-e2e");
    // The platform team creates the TDA topic: `tda` may write it, not create it.
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let registry_password = "registry-pw-7f3a9c";
    // Agents' answers are signed: the HMAC keys must stay out of the logs too.
    let (keyring_path, keyring) = keys::write_keyring(dir.path());
    let config = secure.write_config(
        &topics,
        dir.path(),
        "aura",
        &format!("[agent_auth]\nkeyring = \"{}\"\n", keyring_path.display()),
    );
    secure.grant(&topics, &config);
    // The registry credentials go through the HTTP client (Apicurio here ignores them).
    let registry_env = [
        ("AURA_SCHEMA_REGISTRY_USERNAME", "aura-registry"),
        ("AURA_SCHEMA_REGISTRY_PASSWORD", registry_password),
    ];
    let mut service = Process::spawn(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--instance-id",
            "secure-0",
        ],
        &registry_env,
        "service",
        dir.path(),
    );

    // The agents take the same settings from the environment; the password from the variable.
    let agent_password = secure.password("agent");
    let group = format!("{}-agents", topics.group);
    let agent_env = [
        ("AURA_BOOTSTRAP_SERVERS", secure.bootstrap.as_str()),
        ("AURA_SCHEMA_REGISTRY_URL", &registry()),
        ("AURA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("AURA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("AURA_KAFKA_SASL_USERNAME", "agent"),
        ("AURA_KAFKA_SSL_CA_LOCATION", &secure.ca),
        ("AURA_KAFKA_SASL_PASSWORD", &agent_password),
    ];
    let mut agents = Process::spawn(
        &[
            "agents",
            "--commands-topic",
            &topics.commands,
            "--compensations-topic",
            &topics.compensations,
            "--results-topic",
            &topics.results,
            "--group-id",
            &group,
            "--latency-ms",
            "1..20",
            "--failure-rate",
            "0",
            "--keyring",
            keyring_path.to_str().unwrap(),
        ],
        &agent_env,
        "agents",
        dir.path(),
    );

    // The TDA producer: password from a file named by AURA_KAFKA_SASL_PASSWORD_FILE.
    let tda_file = secure.password_file("tda");
    let tda_env = [
        ("AURA_BOOTSTRAP_SERVERS", secure.bootstrap.as_str()),
        ("AURA_SCHEMA_REGISTRY_URL", &registry()),
        ("AURA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("AURA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
        ("AURA_KAFKA_SASL_USERNAME", "tda"),
        ("AURA_KAFKA_SSL_CA_LOCATION", &secure.ca),
        ("AURA_KAFKA_SASL_PASSWORD_FILE", tda_file.to_str().unwrap()),
    ];
    let mut produce = Process::spawn(
        &[
            "produce",
            "--topic",
            &topics.anomalies,
            "--events",
            "30",
            "--sources",
            "5",
        ],
        &tda_env,
        "produce",
        dir.path(),
    );
    let status = produce.wait(Duration::from_secs(60));
    assert!(
        status.success(),
        "produce failed:\n{}",
        tail(&produce.text())
    );

    let sagas = wait_for_terminal_sagas(&topics, 1, &mut service).await;
    service.stop();
    agents.stop();
    // `aura lag` reads the group's offsets as `aura`, with the same file.
    let lag = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["lag", "--json", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let lag_err = String::from_utf8_lossy(&lag.stderr).into_owned();
    assert!(lag.status.success(), "aura lag over SASL_SSL: {lag_err}");
    let partitions: serde_json::Value = serde_json::from_slice(&lag.stdout).unwrap();
    assert!(
        partitions
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["topic"] == topics.anomalies.as_str() && p["committed"].as_i64() > Some(0)),
        "{partitions}"
    );
    assert!(!lag_err.contains(&secure.password("aura")));
    let completed = sagas
        .values()
        .filter(|k| **k == SagaEventKind::Completed)
        .count();
    assert!(
        !sagas.is_empty() && completed == sagas.len(),
        "every saga completes over SASL_SSL: {sagas:?}\nservice:\n{}\nagents:\n{}",
        tail(&service.text()),
        tail(&agents.text())
    );

    let secrets = [
        secure.password("aura"),
        agent_password,
        secure.password("tda"),
        registry_password.to_owned(),
    ]
    .into_iter()
    .chain(
        keys::TYPES
            .iter()
            .map(|(t, _)| keyring.active(*t).unwrap().secret.expose().to_owned()),
    )
    .collect::<Vec<_>>();
    // The service's log holds librdkafka's own debug lines of the SCRAM handshake.
    assert!(
        service.text().contains("SCRAM"),
        "no SASL debug lines in the service's log"
    );
    for process in [&service, &agents, &produce] {
        let log = process.text();
        // Every level was logged.
        assert!(
            log.contains(" TRACE ") && log.contains(" DEBUG "),
            "{}",
            process.log.display()
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "a secret is in {}",
                process.log.display()
            );
        }
    }
}

/// `aura bench` given only a config file naming the SASL_SSL listener: its own producer and
/// consumer, its topic clean-up and the Aura it starts all authenticate, and the child's
/// written config and logs hold no secret. It runs as `admin` (a super user here): every
/// bench run creates topics and a group named after the run, which no application principal
/// is granted.
#[tokio::test(flavor = "multi_thread")]
async fn the_bench_measures_over_sasl_ssl_from_its_config_file() {
    let secure = Secure::from_env();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"[kafka]
"bootstrap.servers" = "{bootstrap}"

[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "SCRAM-SHA-512"
"sasl.username" = "admin"
"ssl.ca.location" = "{ca}"

[kafka.secrets]
"sasl.password" = {{ file = "{password}" }}

[schema_registry]
url = "{registry}"
"#,
            bootstrap = secure.bootstrap,
            ca = secure.ca,
            password = secure.password_file("admin").display(),
            registry = registry(),
        ),
    )
    .unwrap();
    let work = dir.path().join("work");
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args([
            "bench",
            "--mode",
            "stateless",
            "--rate",
            "200",
            "--seconds",
            "1",
        ])
        .args([
            "--warmup-seconds",
            "1",
            "--config",
            config.to_str().unwrap(),
        ])
        .args(["--work-dir", work.to_str().unwrap()])
        .args(["--report-json", report.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aura bench over SASL_SSL failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["sent"], 200, "{report}");
    assert_eq!(report["received"], 200, "{report}");

    let password = secure.password("admin");
    let mut files = 0;
    let mut stack = vec![work];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert!(
                !text.contains(&password),
                "a secret is in {}",
                path.display()
            );
        }
    }
    assert!(files >= 2, "the child's config and log are in the work dir");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains(&password));
}

/// The `agent` principal may write results but never commands.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_cannot_write_commands() {
    let secure = Secure::from_env();
    let topics = TestTopics::new("secure-agent");
    create_topic(&topics.commands, 1).await;
    create_topic(&topics.results, 1).await;
    let dir = tempfile::tempdir().unwrap();
    secure.grant(&topics, &topics.write_config(dir.path(), "exactly_once_v2"));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &secure.bootstrap)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "agent")
        .set("sasl.password", secure.password("agent"))
        .set("ssl.ca.location", &secure.ca)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    let send = |topic: String| {
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key("k").payload("forged"),
                    Duration::from_secs(10),
                )
                .await
                .map(|_| ())
                .map_err(|(e, _)| e.to_string())
        }
    };
    send(topics.results.clone())
        .await
        .expect("an agent writes results");
    let refused = send(topics.commands.clone()).await.unwrap_err();
    assert!(refused.contains("authorization"), "{refused}");
    assert!(
        read_until_idle(
            &topics.commands,
            0,
            Duration::from_secs(1),
            Duration::from_secs(5)
        )
        .is_empty(),
        "nothing reached the command topic"
    );
}

/// Aura run with a principal that lacks its ACLs stops at start-up, naming each missing one.
#[tokio::test(flavor = "multi_thread")]
async fn aura_names_the_acls_it_lacks_at_start_up() {
    let secure = Secure::from_env();
    let topics = TestTopics::new("secure-lacks");
    create_topic(&topics.anomalies, 1).await;
    let dir = tempfile::tempdir().unwrap();
    // The agent principal may describe commands and results, but not anomalies, nor hold
    // Aura's group or transactional ids.
    let config = secure.write_config(&topics, dir.path(), "agent", "");
    secure.grant(&topics, &config);
    let mut service = Process::spawn(
        &[
            "run",
            "--config",
            config.to_str().unwrap(),
            "--instance-id",
            "lacks-0",
        ],
        &[],
        "service",
        dir.path(),
    );
    let status = service.wait(Duration::from_secs(60));
    let log = service.text();
    assert!(!status.success(), "{}", tail(&log));
    assert!(
        log.contains("the Kafka principal User:agent lacks"),
        "{}",
        tail(&log)
    );
    assert!(
        log.contains(&format!("Describe on topic {}", topics.anomalies)),
        "{}",
        tail(&log)
    );
    assert!(
        log.contains(&format!("Write on transactional id {}-", topics.group)),
        "{}",
        tail(&log)
    );
    assert!(log.contains("deploy/kafka-acls.sh"), "{}", tail(&log));
    assert!(
        !log.contains(&secure.password("agent")),
        "the password is not in the log"
    );
}
