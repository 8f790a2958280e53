//! The flags every measuring subcommand shares: the broker, the guarantee, and how each system
//! under test is started.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::config::ProcessingGuarantee;

use super::system::Setup;

#[derive(Args)]
pub struct SetupArgs {
    /// The broker, registry and credentials of the bench's own clients and of every Aura it
    /// starts (`--config aura.toml`, AURA_KAFKA_*, AURA_SCHEMA_REGISTRY_*), as for `aura run`.
    /// Without a registry, anomalies and commands use the embedded schema catalog.
    #[command(flatten)]
    connection: crate::security::ConnectionArgs,
    /// Aura's guarantee (Kafka Streams always runs exactly_once_v2).
    #[arg(long, default_value = "exactly_once_v2")]
    processing_guarantee: ProcessingGuarantee,
    /// commit.interval.ms of every system.
    #[arg(long, default_value_t = 5)]
    commit_interval_ms: u64,
    /// Partitions of the anomaly topic and of every topic the systems create.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// An extra librdkafka setting for Aura's children (`[kafka.properties]`), NAME=VALUE;
    /// repeatable. E.g. `debug=eos` with AURA_BENCH_SERVICE_LOG=info,rdkafka=debug to see
    /// each transaction's requests and retries in the child's log.
    #[arg(long = "aura-property", value_name = "NAME=VALUE")]
    aura_properties: Vec<String>,
    /// An extra Kafka Streams setting, NAME=VALUE (e.g. `consumer.fetch.max.wait.ms=5`);
    /// repeatable. Without any, Kafka Streams runs on its defaults.
    #[arg(long = "kstreams-property", value_name = "NAME=VALUE")]
    kstreams_properties: Vec<String>,
    /// The Maven project of the Kafka Streams passthrough; built with `mvn -q package` when
    /// its jar is missing or older than its sources.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/kstreams"))]
    kstreams_project: PathBuf,
    /// Where the children's configs and logs go (default: a new folder under the temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

impl SetupArgs {
    pub fn setup(&self) -> anyhow::Result<Setup> {
        let aura_properties = self
            .aura_properties
            .iter()
            .map(|p| {
                let (name, value) = p.split_once('=').with_context(|| {
                    format!("--aura-property {p:?} is not NAME=VALUE, e.g. debug=eos")
                })?;
                Ok((name.to_string(), value.to_string()))
            })
            .collect::<anyhow::Result<_>>()?;
        if let Some(p) = self.kstreams_properties.iter().find(|p| !p.contains('=')) {
            anyhow::bail!(
                "--kstreams-property {p:?} is not NAME=VALUE, e.g. consumer.fetch.max.wait.ms=5"
            );
        }
        let work = match &self.work_dir {
            Some(dir) => dir.clone(),
            None => std::env::temp_dir().join(format!(
                "aura-bench-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            )),
        };
        std::fs::create_dir_all(&work)
            .with_context(|| format!("cannot create {}", work.display()))?;
        Ok(Setup {
            connection: self.connection.config()?,
            processing_guarantee: self.processing_guarantee,
            commit_interval_ms: self.commit_interval_ms,
            partitions: self.partitions,
            aura_properties,
            kstreams_properties: self.kstreams_properties.clone(),
            kstreams_project: self.kstreams_project.clone(),
            work,
        })
    }
}
