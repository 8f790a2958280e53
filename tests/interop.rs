//! Interop with a client aura did not write: Python confluent-kafka's AvroSerializer produces the
//! anomalies, with a newer TdaAnomaly writer schema than aura's (one extra optional field) that it
//! registers itself, and its AvroDeserializer decodes the commands aura emits. Needs the real
//! broker and registry (`scripts/test`) and a Python with tests/interop/requirements.txt installed:
//! `scripts/test` makes one in a virtual environment (`scripts/python-env`) and names its python in
//! AURA_TEST_PYTHON.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use aura::codec::Codec;
use common::*;
use serde_json::Value;

const RECORDS: usize = 200;

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/python_client.py")
}

/// The Python that has the client's dependencies: AURA_TEST_PYTHON (set by `scripts/test`), else
/// `python3`, which then needs them installed some other way.
fn python() -> String {
    std::env::var("AURA_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Fails loudly, never skips, when the Python client cannot run.
fn require_python_client() {
    let python = python();
    let probe = Command::new(&python)
        .args(["-c", "import confluent_kafka, fastavro"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{python} cannot import confluent_kafka: run the tests with \
             AURA_TEST_PYTHON=\"$(scripts/python-env)\" (a venv with tests/interop/requirements.txt; \
             scripts/test does this)\n{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "cannot run {python} ({e}): set AURA_TEST_PYTHON=\"$(scripts/python-env)\" \
             (scripts/test does this)"
        ),
    }
}

/// Runs `python_client.py <args>` and returns its stdout; panics with its stderr (and `log`) on
/// failure, or after two minutes (coreutils `timeout`), so a hung client fails the test instead
/// of stalling the whole suite.
fn run_client(args: &[&str], log: impl Fn() -> String) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new("timeout")
        .args(["--kill-after=5", "120"])
        .arg(python())
        .arg(client_script())
        .args(args)
        .output()
        .expect("run the Python client");
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "python_client.py {} failed ({status}; 124 is the two-minute timeout):\n{stderr}\n{}",
        args[0],
        log()
    );
    String::from_utf8(stdout).expect("client stdout is UTF-8")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confluent_python_client_with_a_newer_schema_interoperates_with_aura() {
    let (bootstrap, registry) = (bootstrap(), registry());
    require_python_client();
    let topics = TestTopics::new("interop");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_stateless_config(dir.path(), "exactly_once_v2");
    let schema_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/TdaAnomaly.avsc");
    let count = RECORDS.to_string();
    // aura's own schema comes first, as when aura's producers already use the topic; the Python
    // serializer's newer one must then pass the registry's BACKWARD check as the next version.
    Codec::with_registry(
        &registry,
        &[(topics.anomalies.as_str(), "aura.v1.TdaAnomaly")],
    )
    .await
    .unwrap();

    let produced = run_client(
        &[
            "produce",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topics.anomalies,
            "--count",
            &count,
            "--schema-file",
            schema_file.to_str().unwrap(),
        ],
        String::new,
    );
    let ids: Vec<String> =
        serde_json::from_str(&produced).expect("produce prints a JSON array of ids");
    let ids: HashSet<String> = ids.into_iter().collect();
    assert_eq!(ids.len(), RECORDS, "distinct anomaly ids produced");

    // The evolution under test: the writer schema the Python serializer registered is not aura's.
    let subject = format!("{registry}/subjects/{}-value/versions", topics.anomalies);
    let versions: Value = reqwest::get(&subject).await.unwrap().json().await.unwrap();
    assert_eq!(
        versions,
        serde_json::json!([1, 2]),
        "aura's schema, then the Python client's"
    );
    let registered: Value = reqwest::get(format!("{subject}/2"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let writer: Value = serde_json::from_str(
        registered["schema"]
            .as_str()
            .expect("registry returns the schema"),
    )
    .unwrap();
    let fields: Vec<&str> = writer["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"region"),
        "the Python client registered {registered}"
    );

    let service = Service::start(&config, "interop-0", dir.path());
    let consumed = run_client(
        &[
            "consume",
            "--bootstrap",
            &bootstrap,
            "--registry",
            &registry,
            "--topic",
            &topics.commands,
            "--count",
            &count,
            "--timeout",
            "120",
        ],
        || format!("service log:\n{}", service.log_text()),
    );
    let records: Vec<Value> = consumed
        .lines()
        .map(|l| serde_json::from_str(l).expect("consume prints JSON lines"))
        .collect();
    assert_eq!(records.len(), RECORDS, "log:\n{}", service.log_text());

    let mut seen = HashSet::new();
    for record in &records {
        let command = &record["value"];
        let saga_id = command["saga_id"].as_str().unwrap_or_default();
        assert!(!saga_id.is_empty(), "command without saga_id: {command}");
        assert_eq!(
            record["key"].as_str(),
            command["partition_key"].as_str(),
            "commands are keyed by the correlation key (partition_key): {record}"
        );
        assert!(
            matches!(
                command["agent_type"].as_str(),
                Some("OBSERVER" | "ANALYST" | "SUPERVISOR")
            ),
            "agent_type: {command}"
        );
        assert!(
            !command["explanation"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "explanation: {command}"
        );
        assert!(
            command["issued_at"].is_i64() && command["deadline"].is_i64(),
            "timestamps: {command}"
        );
        for id in command["anomaly_ids"]
            .as_array()
            .expect("anomaly_ids is an array")
        {
            seen.insert(id.as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ids, "log:\n{}", service.log_text());

    let log = service.log_text();
    let status = service.stop();
    assert!(
        status.success(),
        "SIGTERM should stop cleanly: {status:?}\n{log}"
    );
    // A record aura could not resolve would have gone to the dead-letter topic instead.
    let dead = read_committed(&topics.dlq, Duration::from_secs(3), |r| !r.is_empty());
    assert!(
        dead.is_empty(),
        "{} records dead-lettered:\n{log}",
        dead.len()
    );
}
