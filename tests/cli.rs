//! The command line as a user meets it: help, config errors, the demo.

use std::process::Command;

fn aura(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(args)
        .env("AURA_LOG", "error")
        .output()
        .unwrap()
}

/// Runs `aura demo` with `args` plus `--summary-json`, and returns the summary and stdout.
fn demo_summary(args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary.json");
    let mut all = vec!["demo"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--summary-json", summary.to_str().unwrap()]);
    let out = aura(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    (json, String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_config_error_exits_non_zero_naming_file_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[kafka]\n\"commit.interval.ms\" = 0\n\"group.id\" = \"has space\"\n",
    )
    .unwrap();
    for args in [vec!["run", "--config"], vec!["topology", "check"]] {
        let mut args: Vec<&str> = args;
        args.push(path.to_str().unwrap());
        let out = aura(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains("bad.toml"), "{stderr}");
        assert!(
            stderr.contains("kafka.commit.interval.ms: must be > 0, got 0"),
            "{stderr}"
        );
        assert!(
            stderr.contains("kafka.group.id") && stderr.contains("has space"),
            "{stderr}"
        );
    }
}

#[test]
fn an_override_flag_is_validated_too() {
    let out = aura(&[
        "run",
        "--bootstrap-servers",
        "",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("kafka.bootstrap.servers"), "{stderr}");
}

#[test]
fn the_demo_accounts_for_every_event() {
    let (json, stdout) = demo_summary(&["--events", "2000", "--bad-ratio", "0.05"]);
    let n = |k: &str| {
        json[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {json}"))
    };
    assert_eq!(n("anomalies_in"), 2000);
    // Each anomaly opened an incident (its saga's start), joined one (a correlation event), or
    // was dead-lettered: nothing is absorbed silently.
    assert_eq!(
        n("sagas_started") + n("correlated") + n("dead_letters"),
        2000,
        "{json}"
    );
    assert!(n("dead_letters") > 0 && n("correlated") > 0);
    assert!(n("commands_out") >= n("sagas_started"));
    assert!(n("processing_p50_us") <= n("processing_p99_us"));
    // Every saga reaches a terminal state against the simulated agents.
    assert!(n("sagas_started") > 0);
    assert_eq!(n("sagas_unfinished"), 0);
    assert_eq!(
        n("sagas_completed") + n("sagas_compensated") + n("sagas_failed"),
        n("sagas_started")
    );
    // The coordination steps ran on their inputs: ballots were answered on agent.votes and
    // decided, crews went out; escalations are counted (a tie escalates).
    assert!(
        n("agent_votes") > 0 && n("consensus_decisions") > 0,
        "{json}"
    );
    assert!(n("decisions_agreed") <= n("consensus_decisions"));
    assert!(n("fan_outs") > 0 && json["escalations"].is_u64(), "{json}");
    assert!(
        stdout.contains("commands out") && stdout.contains("µs |"),
        "{stdout}"
    );
}

#[test]
fn topology_graph_draws_the_services_own_topology() {
    let out = aura(&["topology", "graph", "--service"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    for topic in [
        "tda.anomalies",
        "agent.results",
        "agent.votes",
        "orchestration.decisions",
        "agent.registry",
        "orchestration.flags",
        "orchestration.commands",
        "orchestration.correlations",
        "orchestration.dlq",
        "aura-anomalies-repartition",
        "aura-sagas-changelog",
        "aura-incidents-changelog",
    ] {
        assert!(dot.contains(topic), "{topic} missing:\n{dot}");
    }
    assert!(dot.starts_with("digraph aura {"), "{dot}");
}

#[test]
fn help_teaches_with_examples() {
    let out = aura(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--processing-guarantee") && help.contains("AURA_BOOTSTRAP_SERVERS"),
        "{help}"
    );
    assert!(help.contains("Example"), "{help}");
}

#[test]
fn agents_help_teaches_the_chaos_flags() {
    let out = aura(&["agents", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--failure-rate",
        "--silence-rate",
        "--fail-actions",
        "--silent-actions",
    ] {
        assert!(help.contains(flag), "{flag} missing:\n{help}");
    }
    assert!(help.contains("--fail-actions apply-remediation"), "{help}");
}

#[test]
fn generate_fit_and_eval_report_accuracy_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (train, test, library, report) = (
        path("train.jsonl"),
        path("test.jsonl"),
        path("lib.toml"),
        path("report.json"),
    );
    for (file, seed) in [(&train, "1"), (&test, "2")] {
        let out = aura(&[
            "patterns", "generate", "--count", "400", "--seed", seed, "--noise", "0.4", "--out",
            file,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = aura(&["patterns", "fit", "--dataset", &train, "--out", &library]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = aura(&[
        "eval",
        "--dataset",
        &test,
        "--patterns",
        &library,
        "--report-json",
        &report,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["n"].as_u64(), Some(400));
    let accuracy = json["pattern_accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.9, "pattern accuracy {accuracy}");
    assert!(
        json["route_accuracy"].is_number(),
        "generated labels carry routes: {json}"
    );
    assert!(
        json["confusion"].is_object() || json["confusion"].is_array(),
        "{json}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.to_lowercase().contains("accuracy"), "{stdout}");
}

#[test]
fn topology_check_accepts_every_shipped_file_and_names_a_broken_workflow_field() {
    let root = env!("CARGO_MANIFEST_DIR");
    for path in [
        "topologies/workflows",
        "topologies/patterns.toml",
        "deploy/aura.toml",
    ] {
        let out = aura(&["topology", "check", &format!("{root}/{path}")]);
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let shipped =
        std::fs::read_to_string(format!("{root}/topologies/workflows/triage.toml")).unwrap();
    let broken = shipped.replacen("timeout_ms = ", "timeout_ms = 0 # was ", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    let out = aura(&["topology", "check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("broken.toml") && stderr.contains("timeout_ms: must be > 0, got 0"),
        "{stderr}"
    );
}

#[test]
fn topology_graph_draws_a_workflow() {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = format!("{root}/topologies/workflows");
    let out = aura(&[
        "topology",
        "graph",
        &dir,
        "--workflow",
        "triage",
        "--format",
        "dot",
    ]);
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && dot.contains("digraph") && dot.contains("->"),
        "{dot}"
    );
}

#[test]
fn the_demo_compensates_when_agents_fail_often() {
    let (json, _) = demo_summary(&[
        "--events",
        "1000",
        "--agent-failure-rate",
        "0.6",
        "--agent-silence-rate",
        "0.1",
    ]);
    let n = |k: &str| {
        json[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {json}"))
    };
    assert!(
        n("saga_compensations") > 0 && n("sagas_compensated") + n("sagas_failed") > 0,
        "{json}"
    );
    assert_eq!(n("sagas_unfinished"), 0);
}
