//! `aura bench compare`: every system side by side, on one broker, in one run, several rounds.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::measure::PhaseResult;
use super::plot::{self, Series};
use super::session::{self, Plan};
use super::setup_args::SetupArgs;
use super::system::System;

/// Measure several systems side by side: latency per system and rate, over several rounds.
///
/// Runs a discarded warm-up round first (the broker's first minute is slow: JIT). Then, in
/// each round, each system in turn (the order rotates from round to round, so none always
/// goes first) is started as a child process on fresh topics, warmed up for
/// --warmup-seconds (discarded), measured for --seconds at each rate, and stopped. The
/// measuring client is this process, the same for every system. Writes compare.json and
/// compare.svg (p50/p99 per system and rate; worst latency over time) into --out. Example:
///
///   aura bench compare --bootstrap-servers localhost:9092 \
///       --schema-registry-url http://localhost:8081 --rates 1000,2000 --rounds 3 \
///       --systems kstreams,passthrough,stateless,sagas --out bench-results
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct CompareArgs {
    #[command(flatten)]
    setup: SetupArgs,
    /// The systems to compare.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kstreams,passthrough,stateless,sagas"
    )]
    systems: Vec<System>,
    /// Anomalies per second; each system is measured at each.
    #[arg(long, value_delimiter = ',', default_value = "1000,2000")]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of measured sending per system, rate and round.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    /// Seconds of discarded sending after each system starts.
    #[arg(long, default_value_t = 10.0)]
    warmup_seconds: f64,
    /// Seconds of the discarded warm-up round (the first system in --systems) before round 1.
    #[arg(long, default_value_t = 30.0)]
    broker_warmup_seconds: f64,
    /// The folder for compare.json and compare.svg.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
}

#[derive(Serialize)]
struct CompareReport {
    command: String,
    processing_guarantee: String,
    commit_interval_ms: u64,
    partitions: i32,
    rounds: usize,
    seconds: f64,
    warmup_seconds: f64,
    broker_warmup_seconds: f64,
    /// Load average when the run started and ended: the machine is shared.
    load_average: [String; 2],
    results: Vec<SystemResult>,
}

#[derive(Serialize)]
struct SystemResult {
    system: System,
    round: usize,
    #[serde(flatten)]
    phase: PhaseResult,
}

pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    anyhow::ensure!(!args.systems.is_empty(), "--systems names no system");
    anyhow::ensure!(!args.rates.is_empty(), "--rates names no rate");
    let setup = args.setup.setup()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let load_before = load_average();
    eprintln!(
        "aura bench compare: {:?} at {:?}/s, {} rounds; logs in {}",
        args.systems.iter().map(|s| s.name()).collect::<Vec<_>>(),
        args.rates,
        args.rounds,
        setup.work.display()
    );
    // Warming up at the highest rate readies the broker and each system for all of them.
    let top_rate = args.rates.iter().copied().fold(0.0, f64::max);
    eprintln!(
        "warm-up round ({} s of {} at {top_rate}/s, discarded)",
        args.broker_warmup_seconds,
        args.systems[0].name()
    );
    let warmup = Plan {
        warmup_seconds: args.broker_warmup_seconds,
        warmup_rate: top_rate,
        rates: &[],
        seconds: 0.0,
        stop_above_p99_ms: None,
    };
    session::run(args.systems[0], &setup, &warmup).await?;

    let mut results = Vec::new();
    for round in 0..args.rounds {
        eprintln!("round {} of {}", round + 1, args.rounds);
        let plan = Plan {
            warmup_seconds: args.warmup_seconds,
            warmup_rate: top_rate,
            rates: &args.rates,
            seconds: args.seconds,
            stop_above_p99_ms: None,
        };
        for k in 0..args.systems.len() {
            let system = args.systems[(round + k) % args.systems.len()];
            for phase in session::run(system, &setup, &plan).await? {
                results.push(SystemResult {
                    system,
                    round: round + 1,
                    phase,
                });
            }
        }
    }

    let report = CompareReport {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        processing_guarantee: setup.processing_guarantee.to_string(),
        commit_interval_ms: setup.commit_interval_ms,
        partitions: setup.partitions,
        rounds: args.rounds,
        seconds: args.seconds,
        warmup_seconds: args.warmup_seconds,
        broker_warmup_seconds: args.broker_warmup_seconds,
        load_average: [load_before, load_average()],
        results,
    };
    let json = args.out.join("compare.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", json.display()))?;
    let series = series(&report.results, &args.systems, &args.rates);
    let title = format!(
        "Anomaly to output, {} commit.interval.ms={}, {} rounds, one broker, one run",
        report.processing_guarantee, report.commit_interval_ms, report.rounds
    );
    let svg = args.out.join("compare.svg");
    std::fs::write(&svg, plot::render(&series, &title))
        .with_context(|| format!("cannot write {}", svg.display()))?;
    print!("{}", table(&series));
    println!("\nwrote {} and {}", json.display(), svg.display());
    Ok(())
}

fn series<'a>(results: &'a [SystemResult], systems: &[System], rates: &[f64]) -> Vec<Series<'a>> {
    let mut out = Vec::new();
    for &rate in rates {
        for &system in systems {
            let rounds = results
                .iter()
                .filter(|r| r.system == system && r.phase.rate == rate)
                .map(|r| &r.phase)
                .collect();
            out.push(Series {
                system,
                rate,
                rounds,
            });
        }
    }
    out
}

/// A Markdown table: the range over rounds of each figure.
fn table(series: &[Series<'_>]) -> String {
    let range = |s: &Series<'_>, f: fn(&PhaseResult) -> f64| {
        let lo = s.rounds.iter().map(|r| f(r)).fold(f64::INFINITY, f64::min);
        let hi = s.rounds.iter().map(|r| f(r)).fold(0.0, f64::max);
        if s.rounds.is_empty() {
            "-".to_string()
        } else if (hi - lo).abs() < 0.05 {
            format!("{lo:.1}")
        } else {
            format!("{lo:.1}–{hi:.1}")
        }
    };
    let mut out = String::from(
        "\n| rate | system | p50 ms | p90 ms | p99 ms | max ms | outputs/s |\n|---|---|---|---|---|---|---|\n",
    );
    for s in series {
        let incomplete = s.rounds.iter().any(|r| r.received < r.sent);
        out += &format!(
            "| {} | {}{} | {} | {} | {} | {} | {} |\n",
            s.rate,
            s.system.name(),
            if incomplete { " (outputs missing)" } else { "" },
            range(s, |r| r.p50_ms),
            range(s, |r| r.p90_ms),
            range(s, |r| r.p99_ms),
            range(s, |r| r.max_ms),
            range(s, |r| r.throughput_per_second),
        );
    }
    out
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
