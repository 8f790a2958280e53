//! The Kubernetes manifests' configuration as the pods see it: the init container appends the
//! Secret's `[kafka.properties]` table to the ConfigMap's aura.toml (deploy/kubernetes/), and the
//! result must pass `aura topology check`, with and without the example credentials switched on.

use std::process::Command;

fn secret_fragment() -> String {
    let secret = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/secret.yaml"
    ))
    .unwrap();
    let (_, block) = secret
        .split_once("kafka-properties.toml: |\n")
        .expect("secret.yaml has the kafka-properties.toml block");
    block
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect()
}

fn check(fragment: &str) -> std::process::Output {
    let config = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/aura.toml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aura.toml");
    std::fs::write(&path, config + fragment).unwrap();
    Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["topology", "check", path.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn the_pods_assembled_config_passes_topology_check() {
    let fragment = secret_fragment();
    assert!(fragment.starts_with("[kafka.properties]\n"), "{fragment}");
    let out = check(&fragment);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The commented SASL example, switched on, is still a valid [kafka.properties] table.
    let with_credentials = fragment.replace("# \"", "\"");
    assert!(with_credentials.contains("\"sasl.username\" = \"aura\""));
    let out = check(&with_credentials);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
