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
use crate::model::AgentCommand;
use crate::processor::{AnomalyRouter, Processor, RouterSettings};
use crate::runtime::{EmbeddedLog, EmbeddedRunner, OutputRecord, RecordHandler};
use crate::saga::{SagaConfig, SagaEngine, SagaStart, Workflows};
use crate::sim::{run_sagas, AgentProfile, SagaRunStats, SimulatedAgents};
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
    /// Distinct sources (correlation keys). Anomalies of one source within five minutes are
    /// one incident and join one saga.
    #[arg(long, default_value_t = 2000)]
    sources: usize,
    /// Share of agent commands the simulated agents answer FAILED, in [0, 1].
    #[arg(long, default_value_t = 0.05)]
    agent_failure_rate: f64,
    /// Share of agent commands the simulated agents never answer, in [0, 1].
    #[arg(long, default_value_t = 0.01)]
    agent_silence_rate: f64,
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
    pub sagas_started: u64,
    pub anomalies_joined: u64,
    pub sagas_completed: u64,
    pub sagas_compensated: u64,
    pub sagas_failed: u64,
    pub sagas_unfinished: u64,
    pub saga_commands: u64,
    pub saga_compensations: u64,
    pub saga_escalations: u64,
    pub saga_start_p99_us: u64,
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
    let codec_for_sagas = codec.clone();

    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("generating {bar:40} {pos}/{len}").expect("valid template"),
    );
    let mut generator = Generator::new(args.seed, args.sources, args.bad_ratio);
    for _ in 0..args.events {
        let now = crate::clock::now_ms();
        let (key, value) = encode(&codec, &topics.anomalies, generator.next_record(now))?;
        log.append(
            OutputRecord {
                topic: topics.anomalies.clone(),
                key: Some(key),
                value: Some(value),
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
        handler: RecordHandler::new(codec, topics.clone(), "aura-demo", Metrics::new()),
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
    let sagas = run_sagas_on_commands(&log, &codec_for_sagas, &topics.commands, &args).await?;
    let summary = DemoSummary {
        anomalies_in: stats.records,
        commands_out: log.read_all(&topics.commands).len() as u64,
        dead_letters: log.read_all(&topics.dead_letters).len() as u64,
        processing_p50_us: stats.processing_us.value_at_quantile(0.50),
        processing_p99_us: stats.processing_us.value_at_quantile(0.99),
        processing_max_us: stats.processing_us.max(),
        events_per_second: stats.records as f64 / wall.max(1e-9),
        wall_seconds: wall,
        sagas_started: sagas.sagas_started,
        anomalies_joined: sagas.anomalies_joined,
        sagas_completed: sagas.sagas_completed,
        sagas_compensated: sagas.sagas_compensated,
        sagas_failed: sagas.sagas_failed,
        sagas_unfinished: sagas.sagas_unfinished,
        saga_commands: sagas.commands,
        saga_compensations: sagas.compensations,
        saga_escalations: sagas.escalations,
        saga_start_p99_us: sagas
            .start_us
            .as_ref()
            .map_or(0, |h| h.value_at_quantile(0.99)),
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

/// Starts a saga per incident from the commands the chain emitted, and runs them all to the
/// end against simulated agents in virtual time.
async fn run_sagas_on_commands(
    log: &EmbeddedLog,
    codec: &Codec,
    commands_topic: &str,
    args: &DemoArgs,
) -> anyhow::Result<SagaRunStats> {
    let workflows = Arc::new(Workflows::builtin()?);
    let engine = SagaEngine::new(workflows, SagaConfig::default());
    let mut triggers = Vec::new();
    for record in log.read_all(commands_topic) {
        let command: AgentCommand = codec
            .decode(record.value.as_deref().unwrap_or_default())
            .await?;
        let start = SagaStart {
            saga_id: command.saga_id,
            correlation_id: command.correlation_id,
            workflow: command.workflow,
            anomaly_ids: command.anomaly_ids,
            pattern_id: command.pattern_id,
            layer: command.layer,
            coordination: command.coordination,
            urgency: command.urgency,
            complexity: command.complexity,
            explanation: command.explanation,
            attributes: command.attributes,
            agent_overrides: Default::default(),
        };
        triggers.push((command.issued_at, start));
    }
    triggers.sort_by_key(|(at, _)| *at);
    let profile = AgentProfile {
        failure_rate: args.agent_failure_rate,
        silence_rate: args.agent_silence_rate,
        ..Default::default()
    };
    let mut agents = SimulatedAgents::new(profile, args.seed);
    Ok(run_sagas(&engine, triggers, &mut agents))
}

fn render(s: &DemoSummary) -> String {
    format!(
        "aura demo: the anomaly-to-command pipeline on the embedded log\n\
         \n  anomalies in        {:>10}\n  commands out        {:>10}\n  dead letters        {:>10}\n\
         \n  throughput          {:>10.0} events/s (one core)\n  processing p50      {:>10} µs\n  processing p99      {:>10} µs\n  wall time           {:>10.2} s\n\n\
         sagas, run against simulated agents in virtual time\n\
         \n  started             {:>10}\n  anomalies joined    {:>10}\n  completed           {:>10}\n  compensated         {:>10}\n  failed              {:>10}\n  unfinished          {:>10}\n  commands issued     {:>10}\n  compensations       {:>10}\n  escalations         {:>10}\n  saga start p99      {:>10} µs\n\n",
        s.anomalies_in, s.commands_out, s.dead_letters, s.events_per_second, s.processing_p50_us, s.processing_p99_us, s.wall_seconds,
        s.sagas_started, s.anomalies_joined, s.sagas_completed, s.sagas_compensated, s.sagas_failed, s.sagas_unfinished,
        s.saga_commands, s.saga_compensations, s.saga_escalations, s.saga_start_p99_us
    )
}
