//! `aura bench`: end-to-end measurements against a real broker. `latency` (the default) times
//! anomaly-to-command; `recovery` loads sagas, kills the service and times its way back.

mod latency;
mod passthrough;
mod probe;
mod recovery;

use clap::{Args, Subcommand};

/// Measure the service end to end on a real broker.
///
/// Without a subcommand, measures anomaly-to-command latency (`aura bench latency --help`).
/// `aura bench recovery` measures memory per saga, changelog restore rate and the time from
/// a SIGKILL to processing again.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    latency: latency::LatencyArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    Latency(latency::LatencyArgs),
    Recovery(recovery::RecoveryArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        None => latency::run(args.latency).await,
        Some(BenchCommand::Latency(a)) => latency::run(a).await,
        Some(BenchCommand::Recovery(a)) => recovery::run(a).await,
    }
}

/// The codec the bench publishes anomalies with: the registry's when one is given.
async fn anomaly_codec(registry: Option<&str>, topic: &str) -> anyhow::Result<crate::codec::Codec> {
    Ok(match registry {
        Some(url) => {
            let access = crate::security::tools::registry_from_env(url)?;
            crate::codec::Codec::with_registry_access(&access, &[(topic, "aura.v1.TdaAnomaly")])
                .await?
        }
        None => crate::codec::Codec::embedded(),
    })
}

/// Topic names no earlier run used, so every run starts from empty topics.
fn fresh_topics(config: &mut crate::config::Config, run_id: &str) {
    let topics = &mut config.topics;
    for (topic, suffix) in [
        (&mut topics.anomalies, "anomalies"),
        (&mut topics.context, "context"),
        (&mut topics.commands, "commands"),
        (&mut topics.dead_letters, "dlq"),
        (&mut topics.agent_results, "results"),
        (&mut topics.agent_votes, "votes"),
        (&mut topics.sagas, "sagas"),
        (&mut topics.compensations, "compensations"),
        (&mut topics.escalations, "escalations"),
    ] {
        *topic = format!("bench-{run_id}-{suffix}");
    }
}
