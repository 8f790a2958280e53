//! Assembles the service from its configuration: codec, tables, the processor chain, and the
//! Kafka runtime. `aura run` and `aura bench` both start the service through here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::codec::Codec;
use crate::config::{Config, InternalTopics};
use crate::processor::{AnomalyRouter, Processor, RouterSettings, SagaProcessor, SAGA_STORE};
use crate::runtime::kafka::{self, KafkaSettings, SubTopology};
use crate::runtime::queries::KeyRouting;
use crate::runtime::{Readiness, RecordHandler, StateQueries};
use crate::saga::{SagaEngine, Workflows};
use crate::semantic::{Engine, PatternLibrary};
use crate::table::Table;
use crate::telemetry::Metrics;

/// Runs the service on Kafka until `shutdown` turns true. `queries` learns where saga state
/// lives, and which of its partitions this instance's tasks own.
pub async fn run_on_kafka(
    config: &Config,
    instance_id: &str,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    queries: Arc<StateQueries>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let codec = connect_codec(config).await?;
    let engine = Arc::new(semantic_engine(config)?);
    metrics.watch_route_cache({
        let engine = engine.clone();
        move || {
            let stats = engine.router_stats();
            (stats.hits, stats.misses)
        }
    });
    let contexts: Arc<Table<_>> = Arc::default();
    let settings = RouterSettings {
        validation: config.validation.clone(),
        sagas: config.sagas.enabled,
        ..Default::default()
    };
    let router = {
        let contexts = contexts.clone();
        Box::new(move || -> Box<dyn Processor> {
            Box::new(AnomalyRouter::new(
                settings.clone(),
                contexts.clone(),
                engine.clone(),
            ))
        })
    };
    let saga_metrics = metrics.sagas.clone();
    let handler = RecordHandler::new(
        codec,
        config.topics.clone(),
        &config.kafka.group_id,
        metrics,
    );
    let mut subtopologies = vec![SubTopology {
        topics: vec![config.topics.anomalies.clone()],
        make_processor: router,
    }];
    if config.sagas.enabled {
        let internal = handler.internal_topics().clone();
        let partitions = kafka::ensure_copartitioned(
            &config.kafka,
            &config.topics.agent_results,
            &[&internal.saga_triggers, &config.topics.agent_votes],
            &[&internal.changelog(SAGA_STORE)],
        )
        .await?;
        // A saga's partition is its trigger's: the router produces triggers keyed by saga id.
        queries.serve(
            SAGA_STORE,
            KeyRouting {
                topic: internal.saga_triggers.clone(),
                partitions,
                group: config.kafka.group_id.clone(),
            },
        );
        let sagas = Arc::new(saga_engine(config)?);
        let gate = config.agent_auth.gate();
        subtopologies.push(SubTopology {
            topics: vec![
                internal.saga_triggers.clone(),
                config.topics.agent_results.clone(),
            ],
            make_processor: Box::new(move || -> Box<dyn Processor> {
                Box::new(SagaProcessor::new(sagas.clone(), &saga_metrics).with_gate(gate.clone()))
            }),
        });
    } else {
        queries.switch_off(SAGA_STORE);
    }
    let kafka_settings = KafkaSettings {
        kafka: config.kafka.clone(),
        instance_id: instance_id.to_string(),
        subtopologies,
        queries,
    };
    // Start-up time is part of recovery time (BENCHMARKS.md): worth a line in the log.
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "codec, engines and topics ready"
    );
    kafka::run(
        config,
        kafka_settings,
        handler,
        contexts,
        readiness,
        shutdown,
    )
    .await?;
    Ok(())
}

/// The saga engine over the configured workflows, or the built-in ones.
pub fn saga_engine(config: &Config) -> anyhow::Result<SagaEngine> {
    let workflows = match &config.sagas.workflows {
        Some(dir) => Workflows::load_dir(dir)?,
        None => Workflows::builtin()?,
    };
    Ok(SagaEngine::new(
        Arc::new(workflows),
        config.sagas.engine.clone(),
    ))
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
    let Some(access) = config.schema_registry.access() else {
        info!("no schema_registry.url: using the embedded schema catalog");
        return Ok(Codec::embedded());
    };
    let url = &access.url;
    let triggers = InternalTopics::new(&config.kafka.group_id).saga_triggers;
    let mut writes = vec![
        (config.topics.commands.as_str(), "aura.v1.AgentCommand"),
        (config.topics.dead_letters.as_str(), "aura.v1.DeadLetter"),
    ];
    if config.sagas.enabled {
        writes.extend([
            (triggers.as_str(), "aura.v1.AgentCommand"),
            (config.topics.sagas.as_str(), "aura.v1.SagaEvent"),
            (
                config.topics.compensations.as_str(),
                "aura.v1.CompensationCommand",
            ),
            (config.topics.escalations.as_str(), "aura.v1.Escalation"),
        ]);
    }
    let mut backoff = Duration::from_millis(200);
    loop {
        match Codec::with_registry_access(&access, &writes).await {
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
