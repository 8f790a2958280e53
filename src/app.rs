//! Assembles the service from its configuration: codec, tables, the processor chain, and the
//! Kafka runtime. `aura run` and `aura bench` both start the service through here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::codec::Codec;
use crate::config::Config;
use crate::processor::{AnomalyRouter, Processor, RouterSettings};
use crate::runtime::kafka::{self, KafkaSettings};
use crate::runtime::{Readiness, RecordHandler};
use crate::semantic::{Engine, PatternLibrary};
use crate::table::Table;
use crate::telemetry::Metrics;

/// Runs the service on Kafka until `shutdown` turns true.
pub async fn run_on_kafka(
    config: &Config,
    instance_id: &str,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let codec = connect_codec(config).await?;
    let engine = Arc::new(semantic_engine(config)?);
    let contexts: Arc<Table<_>> = Arc::default();
    let settings = RouterSettings {
        validation: config.validation.clone(),
        ..Default::default()
    };
    let make_processor = {
        let contexts = contexts.clone();
        Box::new(move || -> Box<dyn Processor> {
            Box::new(AnomalyRouter::new(
                settings.clone(),
                contexts.clone(),
                engine.clone(),
            ))
        })
    };
    let handler = RecordHandler::new(codec, config.topics.clone(), metrics);
    let kafka_settings = KafkaSettings {
        kafka: config.kafka.clone(),
        instance_id: instance_id.to_string(),
        input_topics: vec![config.topics.anomalies.clone()],
    };
    kafka::run(
        config,
        kafka_settings,
        handler,
        contexts,
        make_processor,
        readiness,
        shutdown,
    )
    .await?;
    Ok(())
}

/// The semantic engine with the configured pattern library, or the built-in one.
pub fn semantic_engine(config: &Config) -> anyhow::Result<Engine> {
    let library = match &config.patterns {
        Some(path) => PatternLibrary::load(path)
            .with_context(|| format!("cannot load the pattern library {}", path.display()))?,
        None => PatternLibrary::builtin(),
    };
    Ok(Engine::new(config.semantic.clone(), library))
}

/// The registry codec, retried while the registry is unreachable (transient), or the
/// embedded catalog when no registry is configured.
async fn connect_codec(config: &Config) -> anyhow::Result<Codec> {
    let Some(url) = &config.schema_registry.url else {
        info!("no schema_registry.url: using the embedded schema catalog");
        return Ok(Codec::embedded());
    };
    let writes = [
        (config.topics.commands.as_str(), "aura.v1.AgentCommand"),
        (config.topics.dead_letters.as_str(), "aura.v1.DeadLetter"),
    ];
    let mut backoff = Duration::from_millis(200);
    loop {
        match Codec::with_registry(url, &writes).await {
            Ok(codec) => return Ok(codec),
            Err(e) if e.is_transient() => {
                warn!(url, error = %e, backoff_ms = backoff.as_millis() as u64, "schema registry unavailable; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("schema registry at {url} refused the schemas"))
            }
        }
    }
}
