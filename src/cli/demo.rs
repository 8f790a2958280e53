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
use crate::model::{
    AgentCommand, ConsensusDecision, ConsensusOutcome, CorrelationEvent, SagaEvent, SagaEventKind,
};
use crate::runtime::{EmbeddedLog, EmbeddedRunner, OutputRecord, RecordHandler};
use crate::sim::{AgentProfile, SimulatedAgents};
use crate::table::Table;
use crate::telemetry::Metrics;
use crate::topology::Topology;

use super::demo_agents::AgentsOnLog;
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
    /// Share of voters on consensus ballots who pick another option than their peers, in
    /// [0, 1]; splits votes so some consensus steps tie and escalate.
    #[arg(long, default_value_t = 0.2)]
    agent_vote_disagreement: f64,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
}

/// What `--summary-json` holds.
#[derive(Serialize)]
pub struct DemoSummary {
    pub anomalies_in: u64,
    /// Commands to agents: every saga step's (and, with sagas off, each incident's first).
    pub commands_out: u64,
    /// Anomalies joined into an open incident, each in one `CorrelationEvent`.
    pub correlated: u64,
    pub dead_letters: u64,
    /// Anomalies whose key did not belong to their partition and took the re-key hop.
    pub rekeyed: u64,
    pub processing_p50_us: u64,
    pub processing_p99_us: u64,
    pub processing_max_us: u64,
    /// Records processed per second of processing time (one core).
    pub events_per_second: f64,
    pub wall_seconds: f64,
    /// Virtual time the sagas took to end, in seconds.
    pub virtual_seconds: f64,
    pub sagas_started: u64,
    pub sagas_completed: u64,
    pub sagas_compensated: u64,
    pub sagas_failed: u64,
    pub sagas_unfinished: u64,
    pub saga_compensations: u64,
    /// Records on `orchestration.escalations`: layer changes of escalate steps, tied or
    /// short consensus steps, and compensations that failed for good.
    pub escalations: u64,
    /// Consensus steps decided (`orchestration.decisions`), and of those AGREED.
    pub consensus_decisions: u64,
    pub decisions_agreed: u64,
    /// Fan-out crews (and supervisors' sub-task crews) sent out.
    pub fan_outs: u64,
    pub agent_results: u64,
    pub agent_votes: u64,
}

/// How far virtual time moves at most between two rounds: timers fire at most this late.
const STEP_MS: i64 = 250;
/// A demo that has not settled after this much virtual time stops and reports what is left.
const MAX_VIRTUAL_MS: i64 = 6 * 60 * 60 * 1000;

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be in [0, 1], got {}",
        args.bad_ratio
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.agent_vote_disagreement),
        "--agent-vote-disagreement must be in [0, 1], got {}",
        args.agent_vote_disagreement
    );
    let partitions = args.partitions.max(1);
    let config = Config::default();
    let topics = config.topics.clone();
    let log = Arc::new(EmbeddedLog::new());
    log.create_topic(&topics.anomalies, partitions);
    let codec = Codec::embedded();

    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("generating {bar:40} {pos}/{len}").expect("valid template"),
    );
    let mut generator = Generator::new(args.seed, args.sources, args.bad_ratio);
    let start_ms = crate::clock::now_ms();
    for _ in 0..args.events {
        let (key, value) = encode(&codec, &topics.anomalies, generator.next_record(start_ms))?;
        log.append(
            OutputRecord {
                partition: None,
                topic: topics.anomalies.clone(),
                key: Some(key),
                value: Some(value),
                headers: vec![],
            },
            start_ms,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();

    // The same topology and processors `aura run` builds, on the embedded log.
    let metrics = Metrics::new();
    let contexts: Arc<Table<_>> = Arc::default();
    let engine = Arc::new(crate::app::semantic_engine(&config)?);
    let make = crate::app::incident_tasks(&config, &metrics, contexts, engine, partitions)?;
    let handler = RecordHandler::new(codec.clone(), Topology::new(&config), metrics.clone());
    let mut runner = EmbeddedRunner::new(log.clone(), handler, "aura-demo", &make, partitions);

    let profile = AgentProfile {
        failure_rate: args.agent_failure_rate,
        silence_rate: args.agent_silence_rate,
        vote_disagreement: args.agent_vote_disagreement,
        ..Default::default()
    };
    let mut agents = AgentsOnLog::new(SimulatedAgents::new(profile, args.seed), &topics);
    let started = Instant::now();
    let bar = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} virtual time {msg}").expect("valid template"),
    );
    let mut now = start_ms;
    let mut processed = 0;
    let mut processing = std::time::Duration::ZERO;
    loop {
        let round = Instant::now();
        processed += runner.run_until_idle(now).await;
        runner.tick(now);
        processing += round.elapsed();
        agents.read_commands(&log, &codec, now).await?;
        let settled = agents.pending() == 0 && metrics.sagas.active.get() == 0;
        if settled || now - start_ms > MAX_VIRTUAL_MS {
            break;
        }
        now = agents
            .next_due()
            .map_or(now + STEP_MS, |due| due.clamp(now + 1, now + STEP_MS));
        agents.deliver_due(&log, &codec, now)?;
        bar.set_message(format!("{:.0} s", (now - start_ms) as f64 / 1000.0));
        bar.tick();
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();

    let count = |topic: &str| log.read_all(topic).len() as u64;
    let mut correlated = 0;
    for r in log.read_all(&topics.correlations) {
        let e: CorrelationEvent = codec.decode(r.value.as_deref().unwrap_or_default()).await?;
        correlated += e.anomaly_ids.len() as u64;
    }
    let mut kinds = std::collections::HashMap::new();
    for r in log.read_all(&topics.sagas) {
        let e: SagaEvent = codec.decode(r.value.as_deref().unwrap_or_default()).await?;
        *kinds.entry(e.kind).or_insert(0u64) += 1;
    }
    let kind = |k| kinds.get(&k).copied().unwrap_or(0);
    let mut agreed = 0;
    for r in log.read_all(&topics.decisions) {
        let d: ConsensusDecision = codec.decode(r.value.as_deref().unwrap_or_default()).await?;
        agreed += u64::from(d.outcome == ConsensusOutcome::Agreed);
    }
    let mut crews = std::collections::HashSet::new();
    for r in log.read_all(&topics.commands) {
        let c: AgentCommand = codec.decode(r.value.as_deref().unwrap_or_default()).await?;
        if let Some(crew) = crew_of(&c) {
            crews.insert(crew);
        }
    }
    let h = &runner.processing_us;
    let summary = DemoSummary {
        anomalies_in: args.events,
        commands_out: count(&topics.commands),
        correlated,
        dead_letters: count(&topics.dead_letters),
        rekeyed: metrics.rekeyed.get(),
        processing_p50_us: h.value_at_quantile(0.50),
        processing_p99_us: h.value_at_quantile(0.99),
        processing_max_us: h.max(),
        events_per_second: processed as f64 / processing.as_secs_f64().max(1e-9),
        wall_seconds: wall,
        virtual_seconds: (now - start_ms) as f64 / 1000.0,
        sagas_started: kind(SagaEventKind::Started),
        sagas_completed: kind(SagaEventKind::Completed),
        sagas_compensated: kind(SagaEventKind::Compensated),
        sagas_failed: kind(SagaEventKind::Failed),
        sagas_unfinished: metrics.sagas.active.get().max(0) as u64,
        saga_compensations: count(&topics.compensations),
        escalations: count(&topics.escalations),
        consensus_decisions: count(&topics.decisions),
        decisions_agreed: agreed,
        fan_outs: crews.len() as u64,
        agent_results: count(&topics.agent_results),
        agent_votes: count(&topics.agent_votes),
    };
    print!("{}", render(&summary));
    println!("processing latency per record:\n{}", histogram_plot(h));
    if let Some(path) = &args.summary_json {
        let json = serde_json::to_string_pretty(&summary).expect("summary serializes");
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
        println!("summary written to {}", path.display());
    }
    Ok(())
}

/// The crew a branch command (`{saga}/{step}/b{i}/{attempt}`) belongs to: its saga and step.
/// One per step visit, as a coordination step is never on a loop (`aura topology check`).
fn crew_of(c: &AgentCommand) -> Option<(String, String)> {
    let id = crate::saga::state::parse_command_id(&c.saga_id, &c.command_id)?;
    let branch = id.branch? == 0;
    (branch && id.part == crate::saga::state::Part::Step)
        .then(|| (c.saga_id.clone(), id.step.to_string()))
}

fn render(s: &DemoSummary) -> String {
    format!(
        "aura demo: the service's topology on the embedded log, with simulated agents\n\
         \n  anomalies in        {:>10}\n  commands out        {:>10}\n  correlated          {:>10}\n  dead letters        {:>10}\n  re-keyed            {:>10}\n\
         \n  throughput          {:>10.0} records/s (one core)\n  processing p50      {:>10} µs\n  processing p99      {:>10} µs\n  wall time           {:>10.2} s\n\n\
         sagas (virtual time: {:.0} s)\n\
         \n  started             {:>10}\n  completed           {:>10}\n  compensated         {:>10}\n  failed              {:>10}\n  unfinished          {:>10}\n  compensations       {:>10}\n  escalations         {:>10}\n  consensus decisions {:>10} ({} agreed)\n  fan-outs            {:>10}\n  agent results       {:>10}\n  agent votes         {:>10}\n\n",
        s.anomalies_in, s.commands_out, s.correlated, s.dead_letters, s.rekeyed, s.events_per_second, s.processing_p50_us, s.processing_p99_us, s.wall_seconds,
        s.virtual_seconds, s.sagas_started, s.sagas_completed, s.sagas_compensated, s.sagas_failed, s.sagas_unfinished,
        s.saga_compensations, s.escalations, s.consensus_decisions, s.decisions_agreed, s.fan_outs, s.agent_results, s.agent_votes
    )
}
