//! `aura bench latency`: anomaly-to-command latency and throughput against a real broker.
//!
//! The service runs in this process on fresh topics. Anomalies are published at a fixed
//! rate; a read_committed consumer decodes each command and measures the time from just
//! before its anomaly was handed to the producer to the command being readable. That is
//! the latency an agent sees, including every broker hop and commit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::Serialize;
use tokio::sync::watch;

use crate::codec::Codec;
use crate::config::{Config, ProcessingGuarantee};
use crate::generator::Generator;
use crate::model::{AgentCommand, TdaAnomaly};
use crate::runtime::Readiness;
use crate::telemetry::Metrics;

use super::super::summary::histogram_plot;
use super::passthrough;

/// Measure anomaly-to-command latency end to end on a real broker.
///
/// Runs the service in process on fresh topics, publishes --events anomalies at --rate per
/// second, and reads the commands back with a read_committed consumer. Prints percentiles
/// and a latency histogram. Run it once per --mode, on the same broker, to see what Aura
/// adds to the broker's own floor. Example:
///
///   aura bench --bootstrap-servers localhost:9092 --schema-registry-url http://localhost:8081 \
///       --events 20000 --rate 1000 --processing-guarantee exactly_once_v2 --mode passthrough
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct LatencyArgs {
    #[arg(long, env = "AURA_BOOTSTRAP_SERVERS", default_value = "localhost:9092")]
    bootstrap_servers: String,
    #[arg(long, env = "AURA_SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Anomalies per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value = "exactly_once_v2")]
    processing_guarantee: ProcessingGuarantee,
    #[arg(long, default_value_t = 5)]
    commit_interval_ms: u64,
    /// Partitions of the anomaly topic (and the output topics).
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// The first events are not measured: they warm up connections and caches.
    #[arg(long, default_value_t = 500)]
    warmup: u64,
    /// What runs between the anomaly topic and the command topic.
    #[arg(long, value_enum, default_value_t = Mode::Sagas)]
    mode: Mode,
    #[arg(long)]
    report_json: Option<PathBuf>,
}

/// The path an anomaly takes to its command.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    /// The default service: every anomaly comes from its own source, so each starts a new
    /// saga; measured to the saga's first command (two transactions: the re-key, the saga).
    Sagas,
    /// `[sagas] enabled = false`: one command per anomaly, one transaction.
    Stateless,
    /// No Aura at all: a plain consume-and-produce loop copies each anomaly to the command
    /// topic with the same guarantee and commit interval. The broker's floor.
    Passthrough,
}

#[derive(Serialize)]
struct BenchReport {
    processing_guarantee: String,
    mode: Mode,
    commit_interval_ms: u64,
    rate: f64,
    events: u64,
    measured: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    throughput_per_second: f64,
}

pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut config = Config::default();
    config.kafka.bootstrap_servers = args.bootstrap_servers.clone();
    config.kafka.group_id = format!("aura-bench-{}", &run_id[..8]);
    config.kafka.processing_guarantee = args.processing_guarantee;
    config.kafka.commit_interval_ms = args.commit_interval_ms;
    config.kafka.output_partitions = args.partitions;
    config.schema_registry.url = args.schema_registry_url.clone();
    config.sagas.enabled = args.mode == Mode::Sagas;
    super::fresh_topics(&mut config, &run_id[..8]);
    let config = config.validated(&crate::config::builtin_origin())?;
    crate::runtime::kafka::ensure_topics(&config.kafka, &[&config.topics.anomalies], &[]).await?;

    let (stop, shutdown) = watch::channel(false);
    let readiness = Arc::new(Readiness::default());
    let metrics = Metrics::new();
    let service = {
        let (config, readiness, shutdown, metrics) = (
            config.clone(),
            readiness.clone(),
            shutdown.clone(),
            metrics.clone(),
        );
        match args.mode {
            Mode::Passthrough => {
                tokio::spawn(async move { passthrough::run(&config, readiness, shutdown).await })
            }
            Mode::Sagas | Mode::Stateless => tokio::spawn(async move {
                let queries = crate::runtime::StateQueries::new();
                crate::app::run_on_kafka(&config, "bench-0", metrics, readiness, queries, shutdown)
                    .await
            }),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while readiness.check().is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service did not become ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let codec = super::anomaly_codec(
        args.schema_registry_url.as_deref(),
        &config.topics.anomalies,
    )
    .await?;
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reader = tokio::spawn(read_commands(
        config.kafka.bootstrap_servers.clone(),
        config.topics.commands.clone(),
        codec.clone(),
        args.mode,
        sent.clone(),
        args.events,
        args.warmup,
    ));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap_servers)
        .set("linger.ms", "0")
        .set("socket.nagle.disable", "true")
        .set("partitioner", "murmur2_random")
        .create()
        .context("cannot create the producer")?;
    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} anomalies sent, eta {eta}")
            .expect("valid template"),
    );
    let sources = if args.mode == Mode::Sagas {
        1 << 40
    } else {
        200
    };
    let mut generator = Generator::new(7, sources, 0.0);
    let started = Instant::now();
    for n in 0..args.events {
        tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / args.rate)).into())
            .await;
        let anomaly = generator.anomaly(crate::clock::now_ms());
        let value = codec.encode(&config.topics.anomalies, &anomaly)?;
        sent.lock()
            .expect("sent lock")
            .insert(anomaly.anomaly_id.clone(), Instant::now());
        let record = FutureRecord::to(&config.topics.anomalies)
            .key(&anomaly.correlation_id)
            .payload(&value);
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .context("produce failed")?;
        // Not awaited: the reader sees every command, and the sender must keep its rate.
        drop(delivery);
        bar.inc(1);
    }
    producer
        .flush(Duration::from_secs(10))
        .context("flush failed")?;
    bar.finish_and_clear();
    let (histogram, last) = reader.await.context("reader panicked")??;
    let _ = stop.send(true);
    service.await.context("service panicked")??;

    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let report = BenchReport {
        processing_guarantee: args.processing_guarantee.to_string(),
        mode: args.mode,
        commit_interval_ms: args.commit_interval_ms,
        rate: args.rate,
        events: args.events,
        measured: histogram.len(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: histogram.max() as f64 / 1000.0,
        throughput_per_second: args.events as f64 / last.duration_since(started).as_secs_f64(),
    };
    println!(
        "aura bench: {} {} at {} anomalies/s, commit.interval.ms={}\n\n  measured   {:>8}\n  p50        {:>8.2} ms\n  p90        {:>8.2} ms\n  p99        {:>8.2} ms\n  p99.9      {:>8.2} ms\n  max        {:>8.2} ms\n  throughput {:>8.0} commands/s\n",
        args.mode.to_possible_value().expect("no variant is skipped").get_name(), report.processing_guarantee, report.rate, report.commit_interval_ms, report.measured,
        report.p50_ms, report.p90_ms, report.p99_ms, report.p999_ms, report.max_ms, report.throughput_per_second
    );
    println!(
        "anomaly-to-command latency:\n{}",
        histogram_plot(&histogram)
    );
    if let Ok(path) = std::env::var("AURA_BENCH_METRICS_OUT") {
        std::fs::write(path, metrics.render())?;
    }
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Reads commands until one per anomaly has arrived; returns the latency histogram (µs)
/// and when the last command arrived. In passthrough mode the "commands" are the anomalies
/// themselves.
async fn read_commands(
    bootstrap: String,
    topic: String,
    codec: Codec,
    mode: Mode,
    sent: Arc<Mutex<HashMap<String, Instant>>>,
    expected: u64,
    warmup: u64,
) -> anyhow::Result<(Histogram<u64>, Instant)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "5")
        .set("socket.nagle.disable", "true")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let mut histogram = crate::telemetry::latency_histogram();
    let (mut seen, mut last) = (0u64, Instant::now());
    while seen < expected {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| format!("no command for 30 s after {seen} of {expected}"))??;
        let received = Instant::now();
        let payload = message.payload().unwrap_or_default();
        let anomaly_id = match mode {
            Mode::Passthrough => Some(codec.decode::<TdaAnomaly>(payload).await?.anomaly_id),
            Mode::Sagas | Mode::Stateless => codec
                .decode::<AgentCommand>(payload)
                .await?
                .anomaly_ids
                .into_iter()
                .next(),
        };
        let sent_at = anomaly_id.and_then(|id| sent.lock().expect("sent lock").remove(&id));
        if let Some(sent_at) = sent_at {
            seen += 1;
            last = received;
            if seen > warmup {
                histogram.saturating_record(received.duration_since(sent_at).as_micros() as u64);
            }
        }
    }
    Ok((histogram, last))
}
