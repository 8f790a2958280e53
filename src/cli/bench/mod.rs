//! `aura bench`: end-to-end measurements against a real broker. `latency` (the default) times
//! anomaly-to-command of one system; `compare` runs several side by side; `saturate` finds the
//! highest rate each sustains; `recovery` loads sagas, kills the service and times its way back.
//! Every system under test runs as a child process; the bench process is the measuring client.

mod child;
mod compare;
mod latency;
mod measure;
mod passthrough;
mod plot;
mod probe;
mod recovery;
mod saturate;
mod service_metrics;
mod session;
mod setup_args;
mod system;

use clap::{Args, Subcommand};

/// Measure the service end to end on a real broker.
///
/// Without a subcommand, measures one system's anomaly-to-command latency (`aura bench latency
/// --help`). `aura bench compare` measures Aura (sagas on and off), a passthrough and a Kafka
/// Streams copy application side by side and plots them; `aura bench saturate` finds the
/// highest rate each sustains with p99 under 100 ms; `aura bench recovery` measures memory per
/// saga, changelog restore rate and the time from a SIGKILL to processing again.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    // Boxed: the bench's flags are many, and `Command` should not be as big as its largest arm.
    #[command(subcommand)]
    command: Option<Box<BenchCommand>>,
    #[command(flatten)]
    latency: Box<latency::LatencyArgs>,
}

#[derive(Subcommand)]
enum BenchCommand {
    Latency(latency::LatencyArgs),
    Compare(compare::CompareArgs),
    Saturate(saturate::SaturateArgs),
    Recovery(recovery::RecoveryArgs),
    #[command(hide = true)]
    PassthroughServe(passthrough::ServeArgs),
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command.map(|c| *c) {
        None => latency::run(*args.latency).await,
        Some(BenchCommand::Latency(a)) => latency::run(a).await,
        Some(BenchCommand::Compare(a)) => compare::run(a).await,
        Some(BenchCommand::Saturate(a)) => saturate::run(a).await,
        Some(BenchCommand::Recovery(a)) => recovery::run(a).await,
        Some(BenchCommand::PassthroughServe(a)) => passthrough::serve(a).await,
    }
}

/// The codec the bench publishes anomalies with: the registry's (with its CA and
/// credentials) when one is given.
async fn anomaly_codec(
    registry: Option<crate::security::RegistryAccess>,
    topic: &str,
) -> anyhow::Result<crate::codec::Codec> {
    Ok(match registry {
        Some(access) => {
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
