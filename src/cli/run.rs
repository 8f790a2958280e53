//! `aura run`: the service.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use tokio::sync::watch;
use tracing::info;

use crate::config::{builtin_origin, Config, ProcessingGuarantee};
use crate::runtime::{Readiness, StateQueries};
use crate::telemetry::Metrics;

/// Run the service: consume TDA anomalies and run each incident as a durable saga of agent
/// commands (or, with `[sagas] enabled = false`, emit one command per anomaly).
///
/// Settings come from the TOML file given with --config (see README "Configuration"); the
/// flags below override it, and each flag can also be set by its environment variable.
/// Example:
///
///   aura run --config aura.toml --bootstrap-servers kafka:9092 --processing-guarantee at_least_once
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The configuration file (TOML). Without it, the built-in defaults are used.
    #[arg(long, short, env = "AURA_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides kafka."bootstrap.servers".
    #[arg(long, env = "AURA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: Option<String>,
    /// Overrides schema_registry.url, e.g. http://localhost:8081.
    #[arg(long, env = "AURA_SCHEMA_REGISTRY_URL")]
    schema_registry_url: Option<String>,
    /// Overrides kafka."group.id" (the application id).
    #[arg(long, env = "AURA_GROUP_ID")]
    group_id: Option<String>,
    /// Overrides kafka."processing.guarantee".
    #[arg(long, env = "AURA_PROCESSING_GUARANTEE")]
    processing_guarantee: Option<ProcessingGuarantee>,
    /// Overrides kafka."commit.interval.ms".
    #[arg(long, env = "AURA_COMMIT_INTERVAL_MS")]
    commit_interval_ms: Option<u64>,
    /// Overrides http.listen, e.g. 127.0.0.1:0 for any free port.
    #[arg(long, env = "AURA_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// This instance's name within the group; part of the transactional id, so keep it
    /// stable across restarts of one instance and distinct between instances.
    #[arg(long, env = "AURA_INSTANCE_ID", default_value_t = default_instance_id())]
    instance_id: String,
}

fn default_instance_id() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "aura-0".into())
}

impl RunArgs {
    /// The file's configuration with the flags applied, validated as a whole.
    fn config(&self) -> anyhow::Result<Config> {
        let (mut config, origin) = match &self.config {
            Some(path) => (Config::load(path)?, path.clone()),
            None => (Config::default(), builtin_origin()),
        };
        if let Some(v) = &self.bootstrap_servers {
            config.kafka.bootstrap_servers = v.clone();
        }
        if let Some(v) = &self.schema_registry_url {
            config.schema_registry.url = Some(v.clone()).filter(|u| !u.is_empty());
        }
        if let Some(v) = &self.group_id {
            config.kafka.group_id = v.clone();
        }
        if let Some(v) = self.processing_guarantee {
            config.kafka.processing_guarantee = v;
        }
        if let Some(v) = self.commit_interval_ms {
            config.kafka.commit_interval_ms = v;
        }
        if let Some(v) = &self.http_listen {
            config.http.listen = v.clone();
        }
        Ok(config.validated(&origin)?)
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(stop_on_signal(stop));

    let metrics = Metrics::new();
    let readiness = Arc::new(Readiness::default());
    let queries = StateQueries::new();
    let listen = config.http.listen.parse().expect("validated");
    let guard = crate::http::Guard {
        token: config.http.resolved_token.clone(),
        request_timeout: std::time::Duration::from_millis(config.http.request_timeout_ms),
    };
    let (bound, http) = crate::http::serve(
        listen,
        guard,
        metrics.clone(),
        readiness.clone(),
        queries.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| {
        format!("cannot listen on http.listen = {listen}; pick a free port with --http-listen")
    })?;
    info!(address = %bound, "http listening");

    crate::security::preflight::log_posture(&config);
    crate::security::preflight::check(&config, &args.instance_id).await?;
    crate::app::run_on_kafka(
        &config,
        &args.instance_id,
        metrics,
        readiness,
        queries,
        shutdown,
    )
    .await?;
    let _ = http.await;
    Ok(())
}

pub async fn stop_on_signal(stop: watch::Sender<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT: stopping"),
        _ = term.recv() => info!("SIGTERM: stopping"),
    }
    let _ = stop.send(true);
}
