//! The dashboard and the alert rules against a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/check-deploy`) scraping a running `aura run` under load, with simulated agents and the
//! broker-side lag exporter (`aura lag --serve`). Every expression of the Grafana dashboard and every
//! recording rule must return data, with the labels its legend or its alerts use; every alert and
//! recording rule must evaluate without error; and every metric any of them names must be exported.
//! So a metric the dashboard uses that the service stopped exporting fails this test.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Exported only once something goes wrong, so empty under a healthy load: expressions over them
/// must evaluate, but may return nothing.
const ONLY_ON_TROUBLE: &[&str] = &[
    "aura_transient_retries_total",
    "aura:escalations:increase15m",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(dir: &Path, aura: &str, lag_exporter: &str) -> Prometheus {
    let binary = std::env::var("AURA_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let rules = root().join("deploy/prometheus/rules");
    let config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: ["{rules}/*.yml"]
scrape_configs:
  - job_name: aura
    static_configs: [{{targets: ["{aura}"]}}]
  - job_name: aura-lag
    static_configs: [{{targets: ["{lag_exporter}"]}}]
"#,
        rules = rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(&binary)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {binary} ({e}): install Debian's prometheus package \
                 (apt-get install prometheus; scripts/check-deploy does this) or set AURA_PROMETHEUS"
            )
        });
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn api(prometheus: &Prometheus, path: &str, query: &[(&str, &str)]) -> Value {
    let response: Value = reqwest::Client::new()
        .get(format!("{}{path}", prometheus.url))
        .query(query)
        .send()
        .await
        .unwrap_or_else(|e| panic!("Prometheus at {} does not answer: {e}", prometheus.url))
        .json()
        .await
        .unwrap();
    response
}

/// The series `expr` returns now; `Err` with Prometheus' error when it does not evaluate.
async fn query(prometheus: &Prometheus, expr: &str) -> Result<Vec<Value>, String> {
    let r = api(prometheus, "/api/v1/query", &[("query", expr)]).await;
    if r["status"] != "success" {
        return Err(format!("{}: {}", r["errorType"], r["error"]));
    }
    Ok(r["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The metric and recorded series names an expression reads, in the order they appear.
fn metric_tokens(expr: &str) -> impl Iterator<Item = &str> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("aura_") || t.starts_with("aura:") || t.starts_with("process_"))
}

fn metric_names(expr: &str) -> BTreeSet<String> {
    metric_tokens(expr).map(str::to_string).collect()
}

/// Whether Prometheus answers `/-/ready` with 200.
async fn ready(prometheus: &Prometheus) -> bool {
    match reqwest::get(format!("{}/-/ready", prometheus.url)).await {
        Ok(r) => r.status().is_success(),
        Err(_) => false,
    }
}

/// `{{label}}` names in a Grafana legend, and `$labels.label` names in an alert's annotations.
fn template_labels(text: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for part in text.split("{{").skip(1) {
        let name = part.split("}}").next().unwrap().trim();
        if let Some(name) = name.strip_prefix("$labels.") {
            labels.insert(name.split_whitespace().next().unwrap().to_string());
        } else if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            labels.insert(name.to_string());
        }
    }
    labels
}

/// Dashboard expressions with Grafana's variables as Grafana would fill them in.
fn dashboard_queries() -> Vec<(String, String, String)> {
    let path = root().join("deploy/grafana/dashboards/aura.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "15s")
                .replace("$__range", "5m")
                .replace("$instance", ".*");
            let legend = target["legendFormat"].as_str().unwrap_or("").to_string();
            out.push((panel["title"].as_str().unwrap().to_string(), expr, legend));
        }
    }
    out
}

fn only_on_trouble(expr: &str) -> bool {
    let names = metric_names(expr);
    !names.is_empty() && names.iter().all(|n| ONLY_ON_TROUBLE.contains(&n.as_str()))
}

/// Everything this test checks, as a list of problems (empty: all good).
async fn problems(prometheus: &Prometheus) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();

    let targets = api(prometheus, "/api/v1/targets", &[]).await;
    for t in targets["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if t["health"] != "up" {
            problems.push(format!(
                "target {} is {}: {}",
                t["scrapeUrl"], t["health"], t["lastError"]
            ));
        }
    }

    for (panel, expr, legend) in dashboard_queries() {
        names.extend(metric_names(&expr));
        match query(prometheus, &expr).await {
            Err(e) => problems.push(format!("panel {panel:?}: {expr} does not evaluate: {e}")),
            Ok(series) if series.is_empty() && !only_on_trouble(&expr) => {
                problems.push(format!("panel {panel:?}: {expr} returned no data"))
            }
            Ok(series) => {
                for label in template_labels(&legend) {
                    if let Some(s) = series.iter().find(|s| s["metric"][&label].is_null()) {
                        problems.push(format!(
                            "panel {panel:?}: {expr} returned a series without the legend's {label}: {s}"
                        ));
                    }
                }
            }
        }
    }

    let rules = api(prometheus, "/api/v1/rules", &[]).await;
    let mut loaded = 0;
    for group in rules["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().unwrap() {
            loaded += 1;
            let (name, expr) = (
                rule["name"].as_str().unwrap(),
                rule["query"].as_str().unwrap(),
            );
            names.extend(metric_names(expr));
            if rule["health"] != "ok" {
                problems.push(format!(
                    "rule {name} is {}: {}",
                    rule["health"], rule["lastError"]
                ));
            }
            // A recording rule's series, or an alert's subject (the first series it compares),
            // must have data with every label its annotations use.
            let (subject, labels) = if rule["type"] == "recording" {
                (name.to_string(), BTreeSet::new())
            } else {
                let annotations = rule["annotations"].to_string();
                match metric_tokens(expr).next() {
                    Some(first) => (first.to_string(), template_labels(&annotations)),
                    // Only non-Aura series (none today): its health above is all there is to check.
                    None => continue,
                }
            };
            match query(prometheus, &subject).await {
                Err(e) => problems.push(format!("{name}: {subject} does not evaluate: {e}")),
                Ok(series) if series.is_empty() && !only_on_trouble(&subject) => {
                    problems.push(format!("{name}: {subject} returned no data"))
                }
                Ok(series) => {
                    for label in labels {
                        if let Some(s) = series.iter().find(|s| s["metric"][&label].is_null()) {
                            problems.push(format!("{name}: {subject} lacks the label {label} its annotations use: {s}"));
                        }
                    }
                }
            }
        }
    }
    let declared = ["slo.yml", "alerts.yml"]
        .iter()
        .map(|f| std::fs::read_to_string(root().join("deploy/prometheus/rules").join(f)).unwrap())
        .map(|t| {
            t.lines()
                .filter(|l| {
                    l.trim_start().starts_with("- record:")
                        || l.trim_start().starts_with("- alert:")
                })
                .count()
        })
        .sum::<usize>();
    if loaded != declared {
        problems.push(format!(
            "Prometheus loaded {loaded} rules, deploy/prometheus/rules declares {declared}"
        ));
    }

    // Every metric named anywhere is exported (recorded series are checked above).
    for name in names.iter().filter(|n| !n.contains(':')) {
        let series = query(prometheus, &format!("count({{__name__=\"{name}\"}})")).await;
        if series.map(|s| s.is_empty()).unwrap_or(true) && !ONLY_ON_TROUBLE.contains(&name.as_str())
        {
            problems.push(format!(
                "{name} is used by the dashboard or a rule but nobody exports it"
            ));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_expression_and_rule_returns_data_from_a_running_service() {
    let (bootstrap, registry) = (bootstrap(), registry());
    let topics = TestTopics::new("prometheus");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");
    let service = Service::start(&config, "aura-0", dir.path());
    let aura = http_address(&service);
    let _agents = start_simulated_agents(&topics, dir.path(), "0.05", "5..50");
    let exporter = Service::spawn(
        &[
            "lag",
            "--bootstrap-servers",
            &bootstrap,
            "--group",
            &topics.group,
            "--serve",
            "127.0.0.1:0",
            "--interval-ms",
            "1000",
        ],
        "lag-exporter",
        dir.path(),
    );
    let lag_exporter = logged_address(&exporter, "lag exporter listening");
    // Load with malformed records, so the dead-letter series exist too.
    let _producer = Service::spawn(
        &[
            "produce",
            "--bootstrap-servers",
            &bootstrap,
            "--schema-registry-url",
            &registry,
            "--topic",
            &topics.anomalies,
            "--events",
            "30000",
            "--rate",
            "200",
            "--bad-ratio",
            "0.05",
        ],
        "producer",
        dir.path(),
    );
    let prometheus = start_prometheus(dir.path(), &aura, &lag_exporter);

    // Rates need two scrapes, the lag exporter a first commit by the group: poll until every
    // check passes, and report what still failed at the deadline.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if !ready(&prometheus).await {
            continue;
        }
        last = problems(&prometheus).await;
        if last.is_empty() {
            break;
        }
    }
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert!(
        last.is_empty() && !dashboard_queries().is_empty(),
        "after 120 s:\n  {}\n--- prometheus log tail:\n{}\n--- aura log tail:\n{}",
        last.join("\n  "),
        tail(&log),
        tail(&service.log_text())
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
