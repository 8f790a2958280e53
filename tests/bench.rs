//! `aura bench` on the real broker, small: the benchmarks keep working and report what they
//! measured. Their figures are for BENCHMARKS.md, never asserted here.

mod common;

use std::process::Command;

use common::*;

fn bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    run_bench(args, &["--report-json", report.to_str().unwrap()]);
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

fn run_bench(args: &[&str], more: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_aura"))
        .arg("bench")
        .args(args)
        .args(["--bootstrap-servers", &bootstrap()])
        .args(["--schema-registry-url", &registry()])
        .args(more)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aura bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every system, Kafka Streams included (it needs Java 17 and Maven, and fails without them),
/// runs as a child process and has every measured anomaly come out.
#[test]
fn every_latency_mode_measures_every_anomaly() {
    for mode in ["passthrough", "stateless", "sagas", "kstreams"] {
        let report = bench(&[
            "--mode",
            mode,
            "--rate",
            "300",
            "--seconds",
            "1",
            "--warmup-seconds",
            "1",
        ]);
        assert_eq!(report["mode"], mode);
        assert_eq!(report["sent"], 300, "{mode}: {report}");
        assert_eq!(report["received"], 300, "{mode}: {report}");
        assert!(report["p50_ms"].as_f64().unwrap() > 0.0, "{mode}: {report}");
        assert!(
            !report["timeline"].as_array().unwrap().is_empty(),
            "{mode}: {report}"
        );
        // Aura's own children also report their commits from their /metrics.
        if mode == "stateless" || mode == "sagas" {
            assert!(
                report["service"]["commits"].as_u64().unwrap() > 0,
                "{report}"
            );
        }
    }
}

#[test]
fn compare_writes_a_result_per_system_rate_and_round_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    run_bench(
        &[
            "compare",
            "--systems",
            "passthrough,stateless",
            "--rates",
            "200,400",
            "--rounds",
            "2",
            "--seconds",
            "1",
            "--warmup-seconds",
            "1",
            "--broker-warmup-seconds",
            "1",
        ],
        &["--out", out],
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("compare.json")).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2 * 2 * 2, "{report}");
    for r in results {
        assert_eq!(r["received"], r["sent"], "{r}");
    }
    let svg = std::fs::read_to_string(dir.path().join("compare.svg")).unwrap();
    // One latency-over-time line per system, rate and round.
    assert_eq!(svg.matches("<polyline").count(), 8);
}

#[test]
fn saturate_steps_up_until_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("saturation.json");
    run_bench(
        &[
            "saturate",
            "--systems",
            "passthrough",
            "--from",
            "200",
            "--factor",
            "2",
            "--max",
            "400",
            "--seconds",
            "1",
            "--warmup-seconds",
            "1",
            "--p99-limit-ms",
            "10000",
        ],
        &["--report-json", report.to_str().unwrap()],
    );
    let found: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(found[0]["system"], "passthrough");
    assert_eq!(found[0]["steps"].as_array().unwrap().len(), 2, "{found}");
    assert_eq!(found[0]["sustained_rate"], 400.0, "{found}");
}

#[test]
fn recovery_restores_every_saga_and_processes_again() {
    let report = bench(&["recovery", "--sagas", "300", "--rate", "1000"]);
    assert_eq!(report["sagas"], 300);
    // Each saga was written at least once; timers that fired since add records.
    assert!(
        report["restored_records"].as_u64().unwrap() >= 300,
        "{report}"
    );
    assert!(report["resident_bytes_loaded"].as_u64().unwrap() > 0);
    assert!(report["first_command_after_ms"].as_u64().unwrap() > 0);
}
