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

/// `HOSTNAME`, else the kernel's host name (shells set `HOSTNAME` without exporting it, so
/// services started by systemd or cron often lack it), else a random id: two instances
/// with one id fence each other's transactions, which is worse than losing fast fencing of
/// one's own predecessor after a restart.
fn default_instance_id() -> String {
    instance_id_from(
        std::env::var("HOSTNAME").ok(),
        std::fs::read_to_string("/proc/sys/kernel/hostname").ok(),
    )
}

fn instance_id_from(env: Option<String>, kernel: Option<String>) -> String {
    [env, kernel]
        .into_iter()
        .flatten()
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty() && h != "localhost")
        .unwrap_or_else(|| format!("aura-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
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

#[cfg(test)]
mod instance_id_tests {
    use super::instance_id_from;

    #[test]
    fn hosts_without_hostname_do_not_share_an_instance_id() {
        assert_eq!(instance_id_from(Some("pod-7".into()), None), "pod-7");
        assert_eq!(instance_id_from(None, Some("web-3\n".into())), "web-3");
        assert_eq!(
            instance_id_from(Some(String::new()), Some("web-3".into())),
            "web-3"
        );
        let (a, b) = (instance_id_from(None, None), instance_id_from(None, None));
        assert!(a.starts_with("aura-") && a != b, "{a} {b}");
        assert_ne!(
            instance_id_from(None, Some("localhost".into())),
            "localhost"
        );
    }
}
