//! `aura bench saturate`: the highest rate each system sustains with p99 under a limit.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::measure::PhaseResult;
use super::session::{self, Plan};
use super::setup_args::SetupArgs;
use super::system::System;

/// Find the highest rate each system sustains with p99 under --p99-limit-ms.
///
/// Starts each system once (a child process on fresh topics), warms it up (discarded), then
/// measures --seconds at --from anomalies/s, and at each step multiplies the rate by
/// --factor, until a step's p99 exceeds the limit or not every output arrives within 20 s
/// of the step's end. The answer per system is the last step that passed: a lower bound,
/// within one factor of the true limit. Example:
///
///   aura bench saturate --bootstrap-servers localhost:9092 --systems stateless,kstreams \
///       --from 1000 --factor 1.5 --p99-limit-ms 100
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct SaturateArgs {
    #[command(flatten)]
    setup: SetupArgs,
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kstreams,passthrough,stateless,sagas"
    )]
    systems: Vec<System>,
    /// The first rate (anomalies/s).
    #[arg(long, default_value_t = 1000.0)]
    from: f64,
    /// Each step's rate over the previous one's.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// No step goes above this rate.
    #[arg(long, default_value_t = 50_000.0)]
    max: f64,
    #[arg(long, default_value_t = 100.0)]
    p99_limit_ms: f64,
    /// Seconds of measured sending per step.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of discarded sending at --from before the first step.
    #[arg(long, default_value_t = 15.0)]
    warmup_seconds: f64,
    #[arg(long)]
    report_json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Saturation {
    system: System,
    /// The highest rate whose step passed; `None` when even the first failed.
    sustained_rate: Option<f64>,
    steps: Vec<PhaseResult>,
}

pub async fn run(args: SaturateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.factor > 1.0, "--factor must be over 1, e.g. 1.5");
    let setup = args.setup.setup()?;
    let rates = steps(args.from, args.factor, args.max);
    let mut found = Vec::new();
    for &system in &args.systems {
        eprintln!(
            "{}: steps {rates:?}/s, p99 limit {} ms",
            system.name(),
            args.p99_limit_ms
        );
        let plan = Plan {
            warmup_seconds: args.warmup_seconds,
            warmup_rate: args.from,
            rates: &rates,
            seconds: args.seconds,
            stop_above_p99_ms: Some(args.p99_limit_ms),
        };
        let steps = session::run(system, &setup, &plan).await?;
        let sustained_rate = steps
            .iter()
            .take_while(|s| s.sustained(args.p99_limit_ms))
            .map(|s| s.rate)
            .last();
        found.push(Saturation {
            system,
            sustained_rate,
            steps,
        });
    }
    println!(
        "\nhighest rate with p99 under {} ms ({} s steps, factor {}; load average {}):",
        args.p99_limit_ms,
        args.seconds,
        args.factor,
        super::compare::load_average()
    );
    for s in &found {
        let verdict = match s.steps.last() {
            Some(l) if !l.sustained(args.p99_limit_ms) => format!(
                "failed at {}/s: p99 {:.0} ms, {} of {} outputs within 20 s",
                l.rate, l.p99_ms, l.received, l.sent
            ),
            Some(l) => format!("every step passed, up to {}/s (--max)", l.rate),
            None => "not measured".into(),
        };
        println!(
            "  {:<12} {:>8}   ({verdict})",
            s.system.name(),
            s.sustained_rate
                .map_or("none".into(), |r| format!("{r:.0}/s")),
        );
    }
    if let Some(path) = &args.report_json {
        std::fs::write(path, serde_json::to_string_pretty(&found)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `from`, `from × factor`, … up to `max`, rounded to whole hundreds.
fn steps(from: f64, factor: f64, max: f64) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut rate = from;
    while rate <= max {
        rates.push((rate / 100.0).round() * 100.0);
        rate *= factor;
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_by_the_factor_up_to_the_maximum() {
        assert_eq!(
            steps(1000.0, 1.5, 6000.0),
            vec![1000.0, 1500.0, 2300.0, 3400.0, 5100.0]
        );
    }
}
