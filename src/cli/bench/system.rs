//! The systems `aura bench` compares, each started as its own child process on fresh topics.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::Serialize;
use tokio::process::Command;

use crate::config::Config;

use super::child::{free_local_address, write_config, SystemProcess};

/// What runs between the anomaly topic and the output topic the bench reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum System {
    /// The default service (`aura run`, sagas on): every anomaly comes from its own source, so
    /// each starts a new saga; measured to the saga's first command.
    Sagas,
    /// `aura run` with `[sagas] enabled = false`: one command per anomaly, one transaction.
    Stateless,
    /// No Aura processing: one loop copies each anomaly to the command topic with the service's
    /// own committer (same producers, guarantee and commit interval). The broker's floor.
    Passthrough,
    /// A Kafka Streams 4.1.1 copy application (benches/kstreams), exactly_once_v2, the same
    /// commit.interval.ms: what a user would pick instead of Aura. Needs Java 17 and Maven.
    Kstreams,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sagas => "sagas",
            Self::Stateless => "stateless",
            Self::Passthrough => "passthrough",
            Self::Kstreams => "kstreams",
        }
    }

    /// Whether the output is the anomaly itself (a copy) rather than an AgentCommand.
    pub fn copies(self) -> bool {
        matches!(self, Self::Passthrough | Self::Kstreams)
    }

    /// Whether an output's timestamp is when the system produced it. Kafka Streams gives an
    /// output its input's timestamp, so the split at the output's production is unknown there.
    pub fn stamps_outputs(self) -> bool {
        !matches!(self, Self::Kstreams)
    }

    /// Distinct anomaly sources (correlation keys) the generator draws from: one per anomaly
    /// for every system, so each anomaly is an incident of its own and gets its own first
    /// command (sagas on or off: a repeated key would join an open incident instead), and every
    /// system sees the same keys.
    pub fn sources(self) -> usize {
        1 << 40
    }
}

/// How every system is set up: the broker, the guarantee's commit interval, and the rest.
pub struct Setup {
    /// The brokers, Kafka security settings and registry, from `--config` and the environment.
    pub connection: Config,
    /// Aura's guarantee; Kafka Streams always runs exactly_once_v2.
    pub processing_guarantee: crate::config::ProcessingGuarantee,
    pub commit_interval_ms: u64,
    pub partitions: i32,
    /// Extra `[kafka.properties]` for Aura's children, e.g. `debug=eos` while investigating.
    pub aura_properties: Vec<(String, String)>,
    /// Extra Kafka Streams settings (`name=value`), passed as they are.
    pub kstreams_properties: Vec<String>,
    /// The Maven project of the Kafka Streams application.
    pub kstreams_project: PathBuf,
    /// Where children's configs and logs go.
    pub work: PathBuf,
}

/// A started system with the config (topics, group) it runs with.
pub struct Started {
    pub process: SystemProcess,
    pub config: Config,
}

/// Starts `system` on fresh topics named after `run_id`, and waits until it is ready.
pub async fn start(system: System, setup: &Setup, run_id: &str) -> anyhow::Result<Started> {
    if system == System::Kstreams && crate::security::preflight::authenticates(&setup.connection) {
        bail!("the Kafka Streams copy application takes only the bootstrap servers: measure it on a listener without TLS or SASL");
    }
    let mut config = Config::default();
    crate::security::tools::carry_connection(&setup.connection, &mut config);
    config.kafka.group_id = format!("aura-bench-{run_id}");
    config.kafka.processing_guarantee = setup.processing_guarantee;
    config.kafka.commit_interval_ms = setup.commit_interval_ms;
    config.kafka.output_partitions = setup.partitions;
    config.sagas.enabled = system == System::Sagas;
    super::fresh_topics(&mut config, run_id);
    let config = config.validated(&crate::config::builtin_origin())?;
    crate::runtime::kafka::ensure_topics(
        &config.kafka,
        &[&config.topics.anomalies, &config.topics.commands],
        &[],
    )
    .await?;

    let dir = setup.work.join(format!("{}-{run_id}", system.name()));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("system.log");
    let mut process = match system {
        System::Sagas | System::Stateless => {
            let http = free_local_address()?;
            let path = write_config(&dir, &config, &http, &setup.aura_properties)?;
            let mut command = Command::new(std::env::current_exe()?);
            command
                .args(["run", "--config"])
                .arg(&path)
                .args(["--instance-id", "bench-0"])
                .env("AURA_LOG", service_log());
            SystemProcess::spawn(command, &log, Some(http))?
        }
        System::Passthrough => {
            let path = write_config(&dir, &config, "127.0.0.1:0", &setup.aura_properties)?;
            let mut command = Command::new(std::env::current_exe()?);
            command
                .args(["bench", "passthrough-serve", "--config"])
                .arg(&path)
                .env("AURA_LOG", service_log());
            SystemProcess::spawn(command, &log, None)?
        }
        System::Kstreams => {
            let jar = kstreams_jar(&setup.kstreams_project)?;
            let mut command = Command::new("java");
            command
                // Kafka Streams logs every config value at info; warnings are enough here.
                .arg("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
                .arg("-jar")
                .arg(&jar)
                .args([
                    &config.kafka.bootstrap_servers,
                    &config.topics.anomalies,
                    &config.topics.commands,
                    &config.kafka.group_id,
                    &config.kafka.commit_interval_ms.to_string(),
                ])
                .args(&setup.kstreams_properties);
            SystemProcess::spawn(command, &log, None)?
        }
    };
    process.wait_ready(Duration::from_secs(90)).await?;
    Ok(Started { process, config })
}

/// The log filter of Aura's children: AURA_BENCH_SERVICE_LOG, e.g. `info,librdkafka=debug`
/// to see librdkafka's `debug` output.
fn service_log() -> String {
    std::env::var("AURA_BENCH_SERVICE_LOG").unwrap_or_else(|_| "info,rdkafka=warn".into())
}

/// The Kafka Streams application's jar, built with `mvn -q package` when it is missing or
/// older than its sources.
fn kstreams_jar(project: &Path) -> anyhow::Result<PathBuf> {
    let pom = project.join("pom.xml");
    if !pom.exists() {
        bail!(
            "no Kafka Streams project at {} (give its folder with --kstreams-project)",
            project.display()
        );
    }
    let jar = project.join("target/kstreams-passthrough.jar");
    let built = modified(&jar);
    let sources = [pom.clone(), project.join("src")];
    if built.is_none() || sources.iter().any(|s| newest(s) > built) {
        eprintln!(
            "building the Kafka Streams passthrough: mvn -q package in {}",
            project.display()
        );
        let status = std::process::Command::new("mvn")
            .args(["-q", "package"])
            .current_dir(project)
            .status()
            .context("cannot run mvn (Maven 3 and Java 17 must be on PATH)")?;
        if !status.success() {
            bail!(
                "`mvn -q package` failed in {} ({status})",
                project.display()
            );
        }
    }
    Ok(jar)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file or anything under a folder.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .flatten()
        .filter_map(|e| newest(&e.path()))
        .chain(own)
        .max()
}

/// Deletes every topic whose name holds `run_id`, so benchmark topics do not pile up on the
/// broker (a broker holding many of them measured slower). Best effort.
pub async fn delete_topics(kafka: &crate::config::KafkaConfig, run_id: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let Ok(admin) =
        crate::security::client_config(kafka).create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let Ok(metadata) = admin.inner().fetch_metadata(None, Duration::from_secs(10)) else {
        return;
    };
    let names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.contains(run_id))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    if !names.is_empty() {
        let _ = admin.delete_topics(&names, &AdminOptions::new()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_is_as_new_as_its_newest_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/A.java"), "x").unwrap();
        let file = modified(&dir.path().join("src/A.java"));
        assert!(file.is_some());
        assert!(newest(dir.path()) >= file);
        assert_eq!(newest(&dir.path().join("missing")), None);
    }
}
