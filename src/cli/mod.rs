//! The `aura` command line. Each subcommand is one file; `main.rs` only calls [`main`].

mod agents;
mod agents_registry;
mod bench;
mod demo;
mod demo_agents;
mod eval;
mod lag;
mod patterns;
mod produce;
mod run;
mod summary;
mod topology;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use produce::encode as encode_synthetic;

/// Aura Orchestrator: turns TDA anomaly events on Kafka into agent commands, exactly once.
///
/// Start with `aura demo` (no broker needed), then `aura run --config aura.toml` against
/// your Kafka. Every subcommand has its own --help.
#[derive(Parser)]
#[command(name = "aura", version, propagate_version = true)]
pub struct Cli {
    /// How log lines on stderr look: `json` writes one object per line with the `trace_id` and
    /// `span_id` of the current span. Spans are exported over OTLP/HTTP when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set (service name from OTEL_SERVICE_NAME, default `aura`).
    #[arg(long, global = true, value_enum, default_value_t = crate::tracing_setup::LogFormat::Text)]
    log_format: crate::tracing_setup::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Produce(produce::ProduceArgs),
    Demo(demo::DemoArgs),
    Bench(bench::BenchArgs),
    Agents(agents::AgentsArgs),
    Lag(lag::LagArgs),
    /// Build pattern libraries from labelled data (`fit`) or write labelled synthetic data
    /// (`generate`).
    Patterns(patterns::PatternsArgs),
    /// Measure pattern and route accuracy of a pattern library on a labelled dataset.
    Eval(eval::EvalArgs),
    /// Check configuration files before deploying them.
    #[command(subcommand)]
    Topology(topology::TopologyCommand),
}

/// Parses the command line, runs the subcommand, and maps failure to a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own summary; per-record warnings would drown it.
    let _tracing = crate::tracing_setup::init(
        match cli.command {
            Command::Demo(_) => "error",
            Command::Bench(_) => "warn,rdkafka=error",
            // One-shot lag reads report a failure themselves; librdkafka's connection noise would bury it.
            Command::Lag(ref args) if !args.serves() => "warn,rdkafka=off,librdkafka=off",
            _ => "info,rdkafka=warn",
        },
        cli.log_format,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Agents(args) => agents::run(args).await,
            Command::Lag(args) => lag::run(args).await,
            Command::Patterns(args) => patterns::run(args),
            Command::Eval(args) => eval::run(args),
            Command::Topology(cmd) => topology::run(cmd),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
