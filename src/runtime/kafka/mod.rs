//! The Kafka runtime: one consumer-group member that runs the topology with
//! `processing.guarantee` semantics (see [`committer`] for the delivery rule).
//!
//! Scale-out is Kafka's: instances with the same `group.id` split the input partitions.

mod admin;
pub mod clients;
mod committer;
mod context;
mod patterns_loader;
mod stream;
mod table_loader;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, KafkaConfig};
use crate::model::TdaContext;
use crate::processor::Processor;
use crate::table::Table;

use super::{Readiness, RecordHandler, StateQueries};

pub use admin::{ensure_copartitioned, ensure_partitions, ensure_topics};
pub use committer::Committer;
pub use patterns_loader::restore_and_follow as restore_learned_patterns;

/// What the Kafka runtime runs.
pub struct KafkaSettings {
    pub kafka: KafkaConfig,
    /// Distinguishes instances of one group: part of the transactional id, so a restarted
    /// instance fences its own predecessor.
    pub instance_id: String,
    pub subtopologies: Vec<SubTopology>,
    /// Where partition tasks register to answer state queries.
    pub queries: Arc<StateQueries>,
}

/// Input topics that are co-partitioned and processed together: partition `p` of each goes to
/// the same task, which owns the state of every key hashed to `p`.
pub struct SubTopology {
    pub topics: Vec<String>,
    /// Makes the processor of one task, given its partition.
    pub make_processor: MakeProcessor,
}

/// Makes the processor of the task that owns one partition.
pub type MakeProcessor = Box<dyn Fn(i32) -> Box<dyn Processor> + Send + Sync>;

impl KafkaSettings {
    /// The sub-topology that reads `topic`.
    pub fn subtopology_of(&self, topic: &str) -> Option<usize> {
        self.subtopologies
            .iter()
            .position(|st| st.topics.iter().any(|t| t == topic))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the Kafka {what}")]
    Client {
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka {what} failed")]
    Broker {
        what: &'static str,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("cannot create topic {topic}: {reason}")]
    TopicCreation { topic: String, reason: String },
    #[error("topic {topic} has {found} partitions but must have {expected}, like {reference}, so that \
             every saga's records meet in one task; recreate it (or {reference}) with {expected} partitions")]
    NotCopartitioned {
        topic: String,
        found: usize,
        expected: usize,
        reference: String,
    },
    #[error("topic {topic} must be compacted (cleanup.policy=compact) to hold store state, but has cleanup.policy={found}")]
    NotCompacted { topic: String, found: String },
    #[error("the consumer has no group metadata (not a group member yet)")]
    NoGroupMetadata,
    #[error("an output was not delivered; offsets were not committed")]
    DeliveryFailed,
}

/// Runs until `shutdown` turns true. Transient failures (a failed commit, a fenced producer,
/// a broker restart) restart the loop from the last committed offsets with backoff.
pub async fn run(
    config: &Config,
    settings: KafkaSettings,
    handler: RecordHandler,
    contexts: Arc<Table<TdaContext>>,
    readiness: Arc<Readiness>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let topics = &config.topics;
    // Created even when sagas are off, so agents and dashboards can subscribe to them.
    let outputs = [
        &topics.commands,
        &topics.dead_letters,
        &topics.correlations,
        &topics.sagas,
        &topics.compensations,
        &topics.escalations,
        &topics.decisions,
    ];
    ensure_topics(&settings.kafka, &outputs.map(String::as_str), &[]).await?;
    ensure_topics(
        &settings.kafka,
        &[&topics.context],
        &[("cleanup.policy", "compact")],
    )
    .await?;

    let loader = tokio::spawn(table_loader::run(
        settings.kafka.clone(),
        topics.context.clone(),
        topics.dead_letters.clone(),
        handler.codec().clone(),
        contexts.clone(),
        handler.metrics().clone(),
        shutdown.clone(),
    ));
    let restored = {
        let (contexts, readiness) = (contexts.clone(), readiness.clone());
        tokio::spawn(async move {
            while !contexts.is_restored() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            readiness.set_tables_restored();
        })
    };

    let mut backoff = Duration::from_millis(100);
    loop {
        match stream::run_generation(&settings, &handler, &readiness, &mut shutdown).await {
            Ok(stream::Ended::Shutdown) => break,
            Ok(stream::Ended::Restart) => warn!(
                backoff_ms = backoff.as_millis() as u64,
                "restarting the stream loop"
            ),
            Err(error) => {
                warn!(%error, backoff_ms = backoff.as_millis() as u64, "stream loop failed; retrying")
            }
        }
        handler
            .metrics()
            .transient_retries
            .with_label_values(&["stream_loop"])
            .inc();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
    restored.abort();
    match loader.await {
        Ok(Err(error)) => warn!(%error, "table loader failed"),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        _ => {}
    }
    info!("stopped");
    Ok(())
}
