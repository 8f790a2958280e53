//! One system's turn: start it as a child process on fresh topics, warm it up with a discarded
//! phase, measure a phase per rate, stop it and delete its topics.

use std::time::Duration;

use super::measure::{PhaseResult, Probe};
use super::system::{self, Setup, System};

/// How long a phase may take, after its last anomaly was sent, for its outputs to arrive.
const DRAIN: Duration = Duration::from_secs(20);

/// What to do with the system once it is up.
pub struct Plan<'a> {
    /// Seconds of sending at `warmup_rate` before measuring, discarded: the system's (and, on
    /// a fresh broker, the broker's) first seconds are slow: JIT, connections, caches.
    pub warmup_seconds: f64,
    pub warmup_rate: f64,
    pub rates: &'a [f64],
    pub seconds: f64,
    /// Stop after the first rate whose phase `sustained` this p99 no longer (the saturation
    /// search); `None` measures every rate.
    pub stop_above_p99_ms: Option<f64>,
}

/// Runs `plan` on `system`; the results, one per rate measured.
pub async fn run(
    system: System,
    setup: &Setup,
    plan: &Plan<'_>,
) -> anyhow::Result<Vec<PhaseResult>> {
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let result = measure(system, setup, plan, run_id).await;
    system::delete_topics(&setup.connection.kafka, run_id).await;
    result
}

async fn measure(
    system: System,
    setup: &Setup,
    plan: &Plan<'_>,
    run_id: &str,
) -> anyhow::Result<Vec<PhaseResult>> {
    let started = system::start(system, setup, run_id).await?;
    let mut process = started.process;
    let config = started.config;
    let codec =
        super::anomaly_codec(config.schema_registry.access(), &config.topics.anomalies).await?;
    let mut probe = Probe::new(
        system,
        &config.kafka,
        &config.topics.anomalies,
        &config.topics.commands,
        codec,
    )?;
    eprintln!(
        "  {}: warm-up, {:.0} s at {}/s (discarded)",
        system.name(),
        plan.warmup_seconds,
        plan.warmup_rate
    );
    probe
        .phase(plan.warmup_rate, plan.warmup_seconds, DRAIN, &mut process)
        .await?;
    let mut results = Vec::new();
    for &rate in plan.rates {
        let result = probe.phase(rate, plan.seconds, DRAIN, &mut process).await?;
        eprintln!(
            "  {}: {rate}/s  p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} of {} arrived)",
            system.name(),
            result.p50_ms,
            result.p99_ms,
            result.max_ms,
            result.received,
            result.sent
        );
        let stop = plan
            .stop_above_p99_ms
            .is_some_and(|limit| !result.sustained(limit));
        results.push(result);
        if stop {
            break;
        }
    }
    probe.close().await?;
    process.stop().await;
    Ok(results)
}
