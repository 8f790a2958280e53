//! `aura bench` on the real broker, small: the benchmarks keep working and report what they
//! measured. Their figures are for BENCHMARKS.md, never asserted here.

mod common;

use std::process::Command;

use common::*;

fn bench(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let output = Command::new(env!("CARGO_BIN_EXE_aura"))
        .arg("bench")
        .args(args)
        .args(["--bootstrap-servers", &bootstrap()])
        .args(["--schema-registry-url", &registry()])
        .arg("--report-json")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aura bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
}

#[test]
fn every_latency_mode_measures_every_anomaly() {
    for mode in ["passthrough", "stateless", "sagas"] {
        let report = bench(&[
            "--mode", mode, "--events", "300", "--rate", "500", "--warmup", "50",
        ]);
        assert_eq!(report["mode"], mode);
        assert_eq!(report["measured"], 250, "{mode}: {report}");
        assert!(report["p50_ms"].as_f64().unwrap() > 0.0, "{mode}: {report}");
    }
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
