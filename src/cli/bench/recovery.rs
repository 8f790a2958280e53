//! `aura bench recovery`: how much memory active sagas take, how fast their changelog restores,
//! and how long the service takes to process again after a SIGKILL.
//!
//! The service runs as a child process (`aura run`), so the kill is a real one. No agents
//! answer, so every saga stays active, waiting on its first step. The bench loads the sagas,
//! reads the child's resident memory, kills it, restarts it with the same instance id, and
//! publishes a probe anomaly every 10 ms until the first probe's command is readable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::codec::Codec;
use crate::config::Config;
use crate::generator::Generator;
use crate::model::AgentCommand;

use super::child::{free_local_address, write_config};
use super::probe::{http_get, metric_sum, resident_bytes};

/// Measure saga memory, changelog restore and recovery after a SIGKILL on a real broker.
///
/// Loads --sagas active sagas into one `aura run` child process (no agents answer, so they
/// stay active), reads its resident memory, kills it with SIGKILL, restarts it and times
/// the way back: ready, and first command for a new anomaly. Run it once with
/// --membership static and once with dynamic to see what static membership saves. Example:
///
///   aura bench recovery --bootstrap-servers localhost:9092 \
///       --schema-registry-url http://localhost:8081 --sagas 100000 --rate 4000
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct RecoveryArgs {
    /// The broker, registry and credentials of the bench and of the `aura run` it starts
    /// (`--config aura.toml`, AURA_KAFKA_*, AURA_SCHEMA_REGISTRY_*), as for `aura run`.
    #[command(flatten)]
    connection: crate::security::ConnectionArgs,
    /// Active sagas to load before the kill; each anomaly comes from its own source, so each
    /// starts one saga.
    #[arg(long, default_value_t = 100_000)]
    sagas: u64,
    /// Anomalies per second while loading.
    #[arg(long, default_value_t = 4000.0)]
    rate: f64,
    /// Partitions of every topic the bench creates.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// How the restarted instance rejoins its group. `static` (kafka."static.membership")
    /// gets its partitions back at once; `dynamic` waits for the group to expire the killed
    /// member (session.timeout.ms, 10 s).
    #[arg(long, value_enum, default_value_t = Membership::Static)]
    membership: Membership,
    #[arg(long)]
    report_json: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Membership {
    Static,
    Dynamic,
}

#[derive(Serialize)]
struct RecoveryReport {
    membership: Membership,
    sagas: u64,
    resident_bytes_idle: u64,
    resident_bytes_loaded: u64,
    resident_bytes_per_saga: f64,
    restored_records: u64,
    /// The slowest partition's restore; partitions restore in parallel.
    restore_ms: u64,
    restore_records_per_second: f64,
    /// From the restarted process's spawn.
    ready_after_ms: u64,
    first_command_after_ms: u64,
}

pub async fn run(args: RecoveryArgs) -> anyhow::Result<()> {
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let work = std::env::temp_dir().join(format!("aura-bench-recovery-{run_id}"));
    std::fs::create_dir_all(&work)?;
    let http = free_local_address()?;
    let mut config = Config::default();
    crate::security::tools::carry_connection(&args.connection.config()?, &mut config);
    config.kafka.group_id = format!("aura-bench-{run_id}");
    config.kafka.output_partitions = args.partitions;
    config.kafka.static_membership = args.membership == Membership::Static;
    super::fresh_topics(&mut config, run_id);
    let config_path = write_config(&work, &config, &http, &[])?;
    crate::runtime::kafka::ensure_topics(&config.kafka, &[&config.topics.anomalies], &[]).await?;

    println!(
        "aura bench recovery: {} sagas, {} membership; logs in {}",
        args.sagas,
        args.membership
            .to_possible_value()
            .expect("no variant is skipped")
            .get_name(),
        work.display()
    );
    let mut service = Service::spawn(&config_path, &work.join("first.log"))?;
    service.wait_ready(&http, Duration::from_secs(60)).await?;
    let idle = resident_bytes(service.pid())?;

    let codec =
        super::anomaly_codec(config.schema_registry.access(), &config.topics.anomalies).await?;
    let producer: FutureProducer = crate::security::client_config(&config.kafka)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .context("cannot create the producer")?;
    let mut generator = Generator::new(11, 1 << 40, 0.0);
    load(&args, &config, &codec, &producer, &mut generator).await?;
    wait_active(&http, args.sagas).await?;
    let loaded = resident_bytes(service.pid())?;

    let commands = command_reader(&config)?;
    service.kill()?;
    let restarted_at = Instant::now();
    let mut service = Service::spawn(&config_path, &work.join("restarted.log"))?;
    let (ready_after, first_command_after) = tokio::try_join!(
        async {
            service.wait_ready(&http, Duration::from_secs(120)).await?;
            Ok::<_, anyhow::Error>(restarted_at.elapsed())
        },
        probe_until_processed(
            &config,
            &codec,
            &producer,
            &mut generator,
            &commands,
            restarted_at
        ),
    )?;
    let (restored_records, restore_ms) = restore_figures(&work.join("restarted.log"))?;
    service.stop();

    let report = RecoveryReport {
        membership: args.membership,
        sagas: args.sagas,
        resident_bytes_idle: idle,
        resident_bytes_loaded: loaded,
        resident_bytes_per_saga: loaded.saturating_sub(idle) as f64 / args.sagas as f64,
        restored_records,
        restore_ms,
        restore_records_per_second: restored_records as f64 / (restore_ms.max(1) as f64 / 1000.0),
        ready_after_ms: ready_after.as_millis() as u64,
        first_command_after_ms: first_command_after.as_millis() as u64,
    };
    println!(
        "\n  active sagas         {:>10}\n  resident memory      {:>10.1} MiB idle, {:.1} MiB loaded\n  per saga             {:>10.0} bytes\n  restored             {:>10} changelog records in {} ms ({:.0} records/s)\n  ready after restart  {:>10} ms\n  first command after  {:>10} ms (a new anomaly, through both transactions)\n",
        report.sagas,
        idle as f64 / 1048576.0,
        loaded as f64 / 1048576.0,
        report.resident_bytes_per_saga,
        report.restored_records,
        report.restore_ms,
        report.restore_records_per_second,
        report.ready_after_ms,
        report.first_command_after_ms,
    );
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Publishes `args.sagas` anomalies, each from a new source, at `args.rate` per second.
async fn load(
    args: &RecoveryArgs,
    config: &Config,
    codec: &Codec,
    producer: &FutureProducer,
    generator: &mut Generator,
) -> anyhow::Result<()> {
    let bar = progress(args.sagas, "anomalies sent");
    let started = Instant::now();
    for n in 0..args.sagas {
        tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / args.rate)).into())
            .await;
        let anomaly = generator.anomaly(crate::clock::now_ms());
        let value = codec.encode(&config.topics.anomalies, &anomaly)?;
        let record = FutureRecord::to(&config.topics.anomalies)
            .key(&anomaly.correlation_id)
            .payload(&value);
        drop(producer.send_result(record).map_err(|(e, _)| e)?);
        bar.inc(1);
    }
    producer.flush(Duration::from_secs(30))?;
    bar.finish_and_clear();
    Ok(())
}

/// Waits until the service holds every saga as active, then a few seconds more for the last
/// commits.
async fn wait_active(http: &str, sagas: u64) -> anyhow::Result<()> {
    let bar = progress(sagas, "sagas active");
    let mut last_change = (0, Instant::now());
    loop {
        let text = http_get(http, "/metrics")
            .await
            .map(|(_, t)| t)
            .unwrap_or_default();
        let started = metric_sum(&text, "aura_sagas_active", "") as u64;
        bar.set_position(started.min(sagas));
        if started >= sagas {
            break;
        }
        if started != last_change.0 {
            last_change = (started, Instant::now());
        } else if last_change.1.elapsed() > Duration::from_secs(60) {
            bail!("the service is stuck at {started} of {sagas} sagas; see its log");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    // Active in memory is not yet committed: give the last commits time, generously, since a
    // loaded machine delays them by seconds (the restart would otherwise restore fewer).
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// A read_committed consumer positioned at the end of the command topic, before the kill.
fn command_reader(config: &Config) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = crate::security::client_config(&config.kafka)
        .set("group.id", format!("{}-probe", config.kafka.group_id))
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let metadata =
        consumer.fetch_metadata(Some(&config.topics.commands), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for topic in metadata.topics() {
        for p in topic.partitions() {
            tpl.add_partition_offset(topic.name(), p.id(), Offset::End)?;
        }
    }
    consumer.assign(&tpl)?;
    // Resolve the end offsets now, so nothing the restarted service writes is skipped.
    for _ in 0..20 {
        consumer.poll(Duration::from_millis(50));
    }
    Ok(consumer)
}

/// Publishes a probe anomaly every 10 ms until a command for one of them is readable;
/// returns the time from `since`.
async fn probe_until_processed(
    config: &Config,
    codec: &Codec,
    producer: &FutureProducer,
    generator: &mut Generator,
    commands: &BaseConsumer,
    since: Instant,
) -> anyhow::Result<Duration> {
    let mut probes = std::collections::HashSet::new();
    let deadline = since + Duration::from_secs(120);
    while Instant::now() < deadline {
        let anomaly = generator.anomaly(crate::clock::now_ms());
        let value = codec.encode(&config.topics.anomalies, &anomaly)?;
        probes.insert(anomaly.anomaly_id.clone());
        let record = FutureRecord::to(&config.topics.anomalies)
            .key(&anomaly.correlation_id)
            .payload(&value);
        drop(producer.send_result(record).map_err(|(e, _)| e)?);
        let until = Instant::now() + Duration::from_millis(10);
        while Instant::now() < until {
            let Some(message) = commands.poll(Duration::from_millis(2)) else {
                continue;
            };
            let message = message?;
            let command: AgentCommand = codec.decode(message.payload().unwrap_or_default()).await?;
            if command.anomaly_ids.iter().any(|id| probes.contains(id)) {
                return Ok(since.elapsed());
            }
        }
    }
    bail!("no probe anomaly was processed within 120 s of the restart")
}

/// Restored records and the slowest partition's restore time, from the `stores restored`
/// lines of the service's log.
fn restore_figures(log: &Path) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(log)?;
    let field = |line: &str, name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
            .unwrap_or(0)
    };
    let (mut records, mut slowest) = (0, 0);
    for line in text.lines().filter(|l| l.contains("stores restored")) {
        records += field(line, "records");
        slowest = slowest.max(field(line, "elapsed_ms"));
    }
    Ok((records, slowest))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}, eta {{eta}}"))
            .expect("valid template"),
    )
}

/// An `aura run` child process.
struct Service(Child);

impl Service {
    fn spawn(config: &Path, log: &Path) -> anyhow::Result<Self> {
        let log = std::fs::File::create(log)?;
        let child = Command::new(std::env::current_exe()?)
            .args(["run", "--config"])
            .arg(config)
            .args(["--instance-id", "bench-0"])
            .env("AURA_LOG", "info,rdkafka=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start `aura run`")?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    async fn wait_ready(&mut self, http: &str, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.0.try_wait()? {
                bail!("`aura run` exited with {status}; see its log");
            }
            if let Some((200, _)) = http_get(http, "/readyz").await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("`aura run` was not ready within {within:?}")
    }

    /// SIGKILL: no commit, no leave-group, no flush.
    fn kill(mut self) -> anyhow::Result<()> {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }

    /// SIGTERM, so the last run commits and leaves cleanly.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let _ = self.0.wait();
    }
}

/// A bench that fails half-way leaves no service behind.
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
