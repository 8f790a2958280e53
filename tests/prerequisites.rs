//! `scripts/prerequisites` on a machine that has none of them (an empty PATH): every check fails
//! with the package that provides it, all in one run, and the script exits non-zero. And on this
//! machine, which runs the suite, it passes.

use std::process::Command;

fn run(path: &str) -> (bool, String) {
    let out = Command::new("/bin/bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/prerequisites"
        ))
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bare_machine_is_told_everything_it_lacks_at_once() {
    let (ok, text) = run("/nonexistent");
    assert!(!ok, "{text}");
    for wanted in [
        "MISSING  Rust 1.89 or newer",
        "apt-get install build-essential",
        "apt-get install pkg-config",
        "Java 17 or newer for Kafka: apt-get install openjdk-17-jdk-headless",
        "Java 21 or newer for Apicurio Registry",
        "apt-get install maven",
        "apt-get install python3 python3-venv",
        "apt-get install golang-go",
        "apt-get install prometheus",
    ] {
        assert!(text.contains(wanted), "no {wanted:?} in:\n{text}");
    }
    assert!(text.contains("missing; install them"), "{text}");
}

#[test]
fn this_machine_has_everything() {
    let (ok, text) = run(&std::env::var("PATH").unwrap());
    assert!(ok, "{text}");
    assert!(!text.contains("MISSING"), "{text}");
}
