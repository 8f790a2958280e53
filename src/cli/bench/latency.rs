//! `aura bench latency` (the default): one system's anomaly-to-output latency on a real broker,
//! measured from outside it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::measure::PhaseResult;
use super::session::{self, Plan};
use super::setup_args::SetupArgs;
use super::system::System;

/// Measure anomaly-to-command latency end to end on a real broker.
///
/// Starts the system under test as a child process on fresh topics (`aura run`, the
/// passthrough loop, or the Kafka Streams application), then this process publishes
/// anomalies at --rate per second and reads the outputs back with a read_committed consumer:
/// the measuring client is never inside what it measures. The first --warmup-seconds are
/// sent and discarded (a fresh broker's first minute is slow: JIT). Prints percentiles and,
/// with --report-json, writes them with a plot (same name, .svg). To compare systems side by
/// side, use `aura bench compare`. Example:
///
///   aura bench --bootstrap-servers localhost:9092 --schema-registry-url http://localhost:8081 \
///       --rate 1000 --seconds 20 --mode stateless --report-json stateless.json
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct LatencyArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// Anomalies per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of measured sending.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of sending before measuring, discarded.
    #[arg(long, default_value_t = 15.0)]
    warmup_seconds: f64,
    /// What runs between the anomaly topic and the topic the bench reads.
    #[arg(long, value_enum, default_value_t = System::Sagas)]
    mode: System,
    /// Writes the figures as JSON here, and the plot next to it (.svg).
    #[arg(long)]
    report_json: Option<PathBuf>,
}

#[derive(Serialize)]
struct LatencyReport<'a> {
    mode: System,
    processing_guarantee: String,
    commit_interval_ms: u64,
    warmup_seconds: f64,
    #[serde(flatten)]
    result: &'a PhaseResult,
}

pub async fn run(args: LatencyArgs) -> anyhow::Result<()> {
    let setup = args.setup.setup()?;
    eprintln!(
        "aura bench: {} at {}/s for {} s after a {} s warm-up that is not measured; logs in {}",
        args.mode.name(),
        args.rate,
        args.seconds,
        args.warmup_seconds,
        setup.work.display()
    );
    let plan = Plan {
        warmup_seconds: args.warmup_seconds,
        warmup_rate: args.rate,
        rates: &[args.rate],
        seconds: args.seconds,
        stop_above_p99_ms: None,
    };
    let results = session::run(args.mode, &setup, &plan).await?;
    let r = results.first().context("no phase was measured")?;
    println!(
        "aura bench: {} {} at {} anomalies/s, commit.interval.ms={}, after a {} s warm-up (discarded)\n\n  measured   {:>8} of {}\n  p50        {:>8.2} ms\n  p90        {:>8.2} ms\n  p99        {:>8.2} ms\n  p99.9      {:>8.2} ms\n  max        {:>8.2} ms\n  throughput {:>8.0} outputs/s",
        args.mode.name(), setup.processing_guarantee, r.rate, setup.commit_interval_ms, args.warmup_seconds,
        r.received, r.sent, r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms, r.throughput_per_second
    );
    if let (Some(before), Some(after)) = (r.before_output_ms, r.after_output_ms) {
        println!(
            "  split at the output's timestamp (p50 / p99 / max): before {:.0} / {:.0} / {:.0} ms, after {:.0} / {:.0} / {:.0} ms",
            before[0], before[1], before[2], after[0], after[1], after[2]
        );
    }
    if let Some(s) = &r.service {
        println!(
            "  service: {} commits ({:.0}/s), {:.2} ms each on average, {} over 25 ms; commit gate closed {:.0}% of the time",
            s.commits, s.commits_per_second, s.commit_mean_ms, s.commits_over_25ms, s.gate_closed_fraction * 100.0
        );
        let [flush, offsets, end] = s.commit_phase_mean_ms;
        println!(
            "  a commit's phases on average: outputs acknowledged {flush:.2} ms, send_offsets_to_transaction {offsets:.2} ms, commit_transaction {end:.2} ms"
        );
    }
    if let Some(path) = &args.report_json {
        let report = LatencyReport {
            mode: args.mode,
            processing_guarantee: setup.processing_guarantee.to_string(),
            commit_interval_ms: setup.commit_interval_ms,
            warmup_seconds: args.warmup_seconds,
            result: r,
        };
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let series = [super::plot::Series {
            system: args.mode,
            rate: args.rate,
            rounds: vec![r],
        }];
        let title = format!(
            "aura bench --mode {} --rate {}",
            args.mode.name(),
            args.rate
        );
        let svg = path.with_extension("svg");
        std::fs::write(&svg, super::plot::render(&series, &title))
            .with_context(|| format!("cannot write {}", svg.display()))?;
    }
    Ok(())
}
