//! `aura demo`: the whole pipeline in process, on the embedded log, with no broker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::codec::Codec;
use crate::config::Config;
use crate::generator::Generator;
use crate::processor::{AnomalyRouter, Processor, RouterSettings};
use crate::runtime::{EmbeddedLog, EmbeddedRunner, OutputRecord, RecordHandler};
use crate::table::Table;
use crate::telemetry::Metrics;

use super::produce::encode;
use super::summary::histogram_plot;

/// Run the anomaly-to-command pipeline in process on an embedded log: no Kafka needed.
///
/// Generates --events anomalies (with --bad-ratio malformed ones), runs the same processors
/// `aura run` uses, and prints throughput, a processing-latency histogram and where every
/// record went. Example:
///
///   aura demo --events 20000 --summary-json demo.json
#[derive(Args)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 20_000)]
    events: u64,
    /// Share of malformed records, in [0, 1]; they land in the dead-letter topic.
    #[arg(long, default_value_t = 0.01)]
    bad_ratio: f64,
    /// Partitions of the embedded input topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

/// What `--summary-json` holds.
#[derive(Serialize)]
pub struct DemoSummary {
    pub anomalies_in: u64,
    pub commands_out: u64,
    pub dead_letters: u64,
    pub processing_p50_us: u64,
    pub processing_p99_us: u64,
    pub processing_max_us: u64,
    pub events_per_second: f64,
    pub wall_seconds: f64,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be in [0, 1], got {}",
        args.bad_ratio
    );
    let config = Config::default();
    let topics = config.topics.clone();
    let log = Arc::new(EmbeddedLog::new());
    log.create_topic(&topics.anomalies, args.partitions.max(1));
    let codec = Codec::embedded();

    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("generating {bar:40} {pos}/{len}").expect("valid template"),
    );
    let mut generator = Generator::new(args.seed, 50, args.bad_ratio);
    for _ in 0..args.events {
        let now = crate::clock::now_ms();
        let (key, value) = encode(&codec, &topics.anomalies, generator.next_record(now))?;
        log.append(
            OutputRecord {
                topic: topics.anomalies.clone(),
                key: Some(key),
                value,
                headers: vec![],
            },
            now,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();

    let contexts: Arc<Table<_>> = Arc::default();
    let engine = Arc::new(crate::app::semantic_engine(&config)?);
    let runner = EmbeddedRunner {
        log: log.clone(),
        handler: RecordHandler::new(codec, topics.clone(), Metrics::new()),
        group: "aura-demo".into(),
        input_topic: topics.anomalies.clone(),
    };
    let started = Instant::now();
    let stats = runner
        .run_to_end(
            move || -> Box<dyn Processor> {
                Box::new(AnomalyRouter::new(
                    RouterSettings::default(),
                    contexts.clone(),
                    engine.clone(),
                ))
            },
            crate::clock::now_ms,
        )
        .await;
    let wall = started.elapsed().as_secs_f64();
    let summary = DemoSummary {
        anomalies_in: stats.records,
        commands_out: log.read_all(&topics.commands).len() as u64,
        dead_letters: log.read_all(&topics.dead_letters).len() as u64,
        processing_p50_us: stats.processing_us.value_at_quantile(0.50),
        processing_p99_us: stats.processing_us.value_at_quantile(0.99),
        processing_max_us: stats.processing_us.max(),
        events_per_second: stats.records as f64 / wall.max(1e-9),
        wall_seconds: wall,
    };
    print!("{}", render(&summary));
    println!(
        "processing latency per record:\n{}",
        histogram_plot(&stats.processing_us)
    );
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!("summary written to {}", path.display());
    }
    Ok(())
}

fn render(s: &DemoSummary) -> String {
    format!(
        "aura demo: the anomaly-to-command pipeline on the embedded log\n\
         \n  anomalies in        {:>10}\n  commands out        {:>10}\n  dead letters        {:>10}\n\
         \n  throughput          {:>10.0} events/s (one core)\n  processing p50      {:>10} µs\n  processing p99      {:>10} µs\n  wall time           {:>10.2} s\n\n",
        s.anomalies_in, s.commands_out, s.dead_letters, s.events_per_second, s.processing_p50_us, s.processing_p99_us, s.wall_seconds
    )
}
