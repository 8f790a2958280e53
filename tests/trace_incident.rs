//! One incident, one trace, read back from a real trace backend (Jaeger, started by
//! `scripts/tracing-backend up`): an anomaly carrying a W3C `traceparent` starts a saga whose
//! remediation always fails (`aura agents --fail-actions`), so the step is retried on timers and
//! the completed steps are compensated. Every span of the service and of the agents for that
//! incident must be found under the anomaly's trace id.
//!
//! Needs the broker (KAFKA_BOOTSTRAP, SCHEMA_REGISTRY_URL) and the backend
//! (AURA_TEST_OTLP_ENDPOINT, AURA_TEST_JAEGER_QUERY_URL, as `scripts/test` sets them from
//! `scripts/tracing-backend up`); without them it fails, never passes silently.

mod common;
// Shares the saga-failure tests' history reader; this test uses only part of it.
#[path = "saga_failures/history.rs"]
#[allow(dead_code)]
mod history;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aura::generator::{Generator, Synthetic};
use aura::model::SagaEventKind;
use common::*;
use history::*;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::Value;

fn backend(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: start the trace backend with `scripts/tracing-backend up` (scripts/test does)")
    })
}

/// Publishes one anomaly with `traceparent`, as a TDA producer that traces would.
async fn produce_traced_anomaly(topic: &str, traceparent: &str) {
    let codec = aura::codec::Codec::with_registry(&registry(), &[(topic, "aura.v1.TdaAnomaly")])
        .await
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let mut generator = Generator::new(97, 1_000_000, 0.0);
    let record = generator.next_record(aura::clock::now_ms());
    assert!(matches!(record, Synthetic::Good(_)));
    let (key, value) = aura::cli::encode_synthetic(&codec, topic, record).unwrap();
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(traceparent),
    });
    producer
        .send(
            FutureRecord::to(topic)
                .key(&key)
                .payload(&value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

/// The trace's spans as (service, operation, tags) from Jaeger's query API, once `expect`
/// holds of them or the deadline passes (export is batched, so spans arrive in bursts).
async fn read_trace(
    query_url: &str,
    trace_id: &str,
    expect: impl Fn(&[Span]) -> bool,
) -> Vec<Span> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{query_url}/api/traces/{trace_id}");
        let spans = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => spans_of(&r.json::<Value>().await.unwrap()),
            Ok(_) => vec![],
            Err(e) => panic!("the trace backend at {query_url} does not answer: {e}"),
        };
        if expect(&spans) || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[derive(Debug, Clone)]
struct Span {
    service: String,
    operation: String,
    tags: Vec<(String, String)>,
}

impl Span {
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn spans_of(body: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for trace in body["data"].as_array().into_iter().flatten() {
        let processes = &trace["processes"];
        for span in trace["spans"].as_array().into_iter().flatten() {
            let process = span["processID"].as_str().unwrap_or_default();
            out.push(Span {
                service: processes[process]["serviceName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                operation: span["operationName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                tags: span["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let v = match &t["value"] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (t["key"].as_str().unwrap_or_default().to_string(), v)
                    })
                    .collect(),
            });
        }
    }
    out
}

const SERVICE_SPANS: [&str; 8] = [
    "decode",
    "process",
    "validate",
    "enrich",
    "assess",
    "route",
    "saga transition",
    "timer",
];

fn complete(spans: &[Span]) -> bool {
    let ops: BTreeSet<&str> = spans.iter().map(|s| s.operation.as_str()).collect();
    SERVICE_SPANS.iter().all(|op| ops.contains(op))
        && spans
            .iter()
            .any(|s| s.tag("answer_id").is_some_and(|id| id.contains("/undo/")))
        && spans.iter().any(|s| s.tag("trigger") == Some("timer"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incident_with_a_retry_and_a_compensation_is_one_trace() {
    let (otlp, query_url) = (
        backend("AURA_TEST_OTLP_ENDPOINT"),
        backend("AURA_TEST_JAEGER_QUERY_URL"),
    );
    let test = "trace-incident";
    let topics = TestTopics::new(test);
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let workflows = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/workflows/failing-step");
    let sagas = format!(
        "[sagas]\nenabled = true\nworkflows = {:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n",
        workflows.display().to_string()
    );
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", &sagas);

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    produce_traced_anomaly(
        &topics.anomalies,
        &format!("00-{trace_id}-00f067aa0ba902b7-01"),
    )
    .await;

    let run_id = &topics.group;
    let (service_name, agents_name) = (format!("aura-{run_id}"), format!("agents-{run_id}"));
    let config = config.to_str().unwrap();
    let service = Service::spawn_with_env(
        &["run", "--config", config, "--instance-id", test],
        test,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_SERVICE_NAME", &service_name),
        ],
    );
    let (bootstrap, registry, group) = (bootstrap(), registry(), format!("{run_id}-agents"));
    let agents = Service::spawn_with_env(
        &[
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
            "--group-id",
            &group,
            "--latency-ms",
            "1..10",
            "--failure-rate",
            "0",
            "--fail-actions",
            "apply-remediation",
        ],
        "agents",
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_SERVICE_NAME", &agents_name),
        ],
    );

    let histories = saga_histories(
        &topics.sagas,
        1,
        Duration::from_secs(2),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(histories.len(), 1, "{}", service.log_text());
    let history = histories.values().next().unwrap();
    let kinds: Vec<SagaEventKind> = history.iter().map(|e| e.kind).collect();
    assert!(
        kinds.contains(&SagaEventKind::Compensated),
        "the saga compensated: {kinds:?}"
    );
    // A clean stop flushes the exporters' last batches.
    assert!(service.stop().success());
    assert!(agents.stop().success());

    let spans = read_trace(&query_url, &trace_id, complete).await;
    let ops: BTreeSet<&str> = spans.iter().map(|s| s.operation.as_str()).collect();
    for op in SERVICE_SPANS {
        assert!(
            ops.contains(op),
            "span {op:?} missing from the trace: {ops:?}"
        );
    }
    let services: BTreeSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
    assert!(services.contains(service_name.as_str()), "{services:?}");
    assert!(services.contains(agents_name.as_str()), "{services:?}");
    // The retried step: a timer moved the saga, and the agents answered a second attempt.
    assert!(spans.iter().any(|s| s.tag("trigger") == Some("timer")));
    let answers: Vec<&str> = spans.iter().filter_map(|s| s.tag("answer_id")).collect();
    assert!(
        answers.iter().any(|id| id.ends_with("/remediate/2")),
        "a retry was answered in the trace: {answers:?}"
    );
    // The compensations of the completed steps were answered in the same trace.
    assert!(
        answers.iter().any(|id| id.contains("/undo/")),
        "a compensation was answered in the trace: {answers:?}"
    );
}
