//! Assembles the service from its configuration: codec, tables, the processor chain, and the
//! Kafka runtime. `aura run` and `aura bench` both start the service through here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::codec::Codec;
use crate::config::Config;
use crate::model::TdaContext;
use crate::processor::{
    incident_key, AnomalyRouter, Dispatcher, Home, IncidentTask, IncidentTaskParts, Learner,
    Processor, Rekeyer, RouterSettings, SagaProcessor, SAGA_STORE,
};
use crate::runtime::kafka::{self, KafkaSettings, MakeProcessor, SubTopology};
use crate::runtime::queries::KeyRouting;
use crate::runtime::{Readiness, RecordHandler, StateQueries};
use crate::saga::{SagaEngine, Workflows};
use crate::semantic::learned::PATTERNS_STORE;
use crate::semantic::{Engine, PatternLibrary};
use crate::table::Table;
use crate::telemetry::Metrics;
use crate::topology::Topology;

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
    let topology = Topology::new(config);
    let codec = connect_codec(config, &topology).await?;
    let engine = Arc::new(semantic_engine(config)?);
    metrics.watch_route_cache({
        let engine = engine.clone();
        move || {
            let stats = engine.router_stats();
            (stats.hits, stats.misses)
        }
    });
    metrics.watch_pattern_library({
        let engine = engine.clone();
        move || engine.library_version() as usize
    });
    let tables = crate::control_plane::tables(&engine, &metrics);
    let contexts = tables.contexts.clone();
    metrics.watch_context_table({
        let contexts = contexts.clone();
        move || contexts.len()
    });
    tokio::spawn(crate::control_plane::sweep_heartbeats(
        engine.clone(),
        metrics.clone(),
        config.registry.clone(),
        shutdown.clone(),
    ));
    let plan = partition_plan(config, &topology).await?;
    info!(
        path = if plan.one_hop { "one-hop" } else { "re-key" },
        partitions = plan.partitions,
        anomaly_partitions = plan.anomaly_partitions,
        why = %plan.why,
        "incident path"
    );
    // A changelog created a moment ago can answer "not leader" or show no partitions yet: a
    // transient state of a fresh topic, retried, never a reason to exit.
    let learned = {
        let mut backoff = Duration::from_millis(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match kafka::restore_learned_patterns(
                &config.kafka,
                &topology.internal.changelog(PATTERNS_STORE),
                engine.clone(),
                shutdown.clone(),
            )
            .await
            {
                Ok(task) => break task,
                Err(error) if std::time::Instant::now() < deadline => {
                    warn!(%error, backoff_ms = backoff.as_millis() as u64, "learned patterns not restored yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error.into()),
            }
        }
    };
    kafka::ensure_topics(&config.kafka, &[&config.topics.feedback], &[]).await?;
    let learner = {
        let engine = engine.clone();
        SubTopology {
            topics: vec![config.topics.feedback.clone()],
            make_processor: Box::new(move |_| -> Box<dyn Processor> {
                Box::new(Learner::new(engine.clone()))
            }),
        }
    };
    let make_task = incident_tasks(config, &metrics, contexts.clone(), engine, plan.partitions)?;
    let t = &topology;
    let mut home_inputs = t.incident_inputs();
    let mut subtopologies = if plan.one_hop {
        home_inputs.insert(0, config.topics.anomalies.clone());
        vec![SubTopology {
            topics: home_inputs,
            make_processor: make_task,
        }]
    } else {
        vec![
            SubTopology {
                topics: vec![config.topics.anomalies.clone()],
                make_processor: Box::new(|_| -> Box<dyn Processor> { Box::new(Rekeyer) }),
            },
            SubTopology {
                topics: home_inputs,
                make_processor: make_task,
            },
        ]
    };
    subtopologies.push(learner);
    if config.sagas.enabled {
        queries.serve(
            SAGA_STORE,
            KeyRouting {
                topic: config.topics.agent_results.clone(),
                partitions: plan.partitions,
                group: config.kafka.group_id.clone(),
                partition_key: incident_key,
            },
        );
    } else {
        queries.switch_off(SAGA_STORE);
    }
    let handler = RecordHandler::new(codec, topology, metrics);
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
    kafka::run(config, kafka_settings, handler, tables, readiness, shutdown).await?;
    learned.abort();
    Ok(())
}

/// How the incident partitions line up with the anomaly topic's (docs/KEYS.md).
struct PartitionPlan {
    /// Partitions of the incident tasks' inputs (results, votes, re-key topic, changelogs).
    partitions: i32,
    anomaly_partitions: i32,
    /// The anomaly chain runs in the incident tasks: no re-key hop for anomalies keyed by
    /// correlation id.
    one_hop: bool,
    why: String,
}

/// Creates what is missing and checks co-partitioning. A missing anomaly topic is created with
/// the results' partition count (or `output.partitions`), so a fresh cluster gets the one-hop
/// path.
async fn partition_plan(config: &Config, topology: &Topology) -> anyhow::Result<PartitionPlan> {
    let topics = &config.topics;
    let changelogs = topology.changelogs();
    let changelogs: Vec<&str> = changelogs.iter().map(String::as_str).collect();
    let rekey = topology.internal.rekey.as_str();
    if !config.sagas.enabled {
        let n =
            kafka::ensure_copartitioned(&config.kafka, &topics.anomalies, &[rekey], &changelogs)
                .await?;
        return Ok(PartitionPlan {
            partitions: n,
            anomaly_partitions: n,
            one_hop: true,
            why: "sagas are off: incidents are partitioned like the anomaly topic".into(),
        });
    }
    let results_n = kafka::ensure_partitions(
        &config.kafka,
        &topics.agent_results,
        config.kafka.output_partitions,
    )
    .await?;
    let anomaly_n = kafka::ensure_partitions(&config.kafka, &topics.anomalies, results_n).await?;
    let n = kafka::ensure_copartitioned(
        &config.kafka,
        &topics.agent_results,
        &[rekey, &topics.agent_votes],
        &changelogs,
    )
    .await?;
    let one_hop = anomaly_n == n;
    let why = if one_hop {
        format!(
            "{} and {} both have {n} partitions: anomalies keyed by correlation id start their saga in the same transaction",
            topics.anomalies, topics.agent_results
        )
    } else {
        format!(
            "{} has {anomaly_n} partitions but {} has {n}: every anomaly is re-keyed through {rekey} first (recreate {} with {n} partitions for the one-hop path)",
            topics.anomalies, topics.agent_results, topics.anomalies
        )
    };
    Ok(PartitionPlan {
        partitions: n,
        anomaly_partitions: anomaly_n,
        one_hop,
        why,
    })
}

/// The factory of incident tasks: one per partition of `partitions`, with its own stores.
pub fn incident_tasks(
    config: &Config,
    metrics: &Metrics,
    contexts: Arc<Table<TdaContext>>,
    engine: Arc<Engine>,
    partitions: i32,
) -> anyhow::Result<MakeProcessor> {
    let settings = RouterSettings {
        validation: config.validation.clone(),
        ..Default::default()
    };
    let sagas = if config.sagas.enabled {
        Some(Arc::new(saga_engine(config)?))
    } else {
        None
    };
    if let Some(sagas) = &sagas {
        for (i, c) in config.sagas.canaries.iter().enumerate() {
            for (field, name) in [("workflow", &c.workflow), ("canary", &c.canary)] {
                anyhow::ensure!(
                    sagas.workflows.get(name).is_some(),
                    "sagas.canaries[{i}].{field}: no workflow named {name:?}; the workflows are {:?}",
                    sagas.workflows.names().collect::<Vec<_>>()
                );
            }
        }
    }
    let correlation = config.correlation.clone();
    let canaries = config.sagas.canaries.clone();
    let (saga_metrics, rekeyed) = (metrics.sagas.clone(), metrics.rekeyed.clone());
    let dispatcher = Arc::new(Dispatcher::new(engine.clone()));
    let gate = config.agent_auth.gate();
    Ok(Box::new(move |partition| -> Box<dyn Processor> {
        let router = AnomalyRouter::new(settings.clone(), contexts.clone(), engine.clone());
        Box::new(IncidentTask::new(
            Home {
                partition,
                partitions,
            },
            IncidentTaskParts {
                router,
                correlation: correlation.clone(),
                sagas: sagas.as_ref().map(|engine| {
                    SagaProcessor::new(engine.clone(), &saga_metrics).with_gate(gate.clone())
                }),
                dispatcher: dispatcher.clone(),
                canaries: canaries.clone(),
                rekeyed: rekeyed.clone(),
            },
        ))
    }))
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
async fn connect_codec(config: &Config, topology: &Topology) -> anyhow::Result<Codec> {
    let Some(access) = config.schema_registry.access() else {
        info!("no schema_registry.url: using the embedded schema catalog");
        return Ok(Codec::embedded());
    };
    let url = &access.url;
    let writes = topology.writes();
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
