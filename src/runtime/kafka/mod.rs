//! The Kafka runtime: one consumer-group member that runs the topology with
//! `processing.guarantee` semantics (see [`committer`] for the delivery rule).
//!
//! Scale-out is Kafka's: instances with the same `group.id` split the input partitions.

mod admin;
pub mod clients;
mod committer;
mod context;
mod output_size;
mod patterns_loader;
pub(crate) mod restore;
mod stream;
mod table_loader;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, KafkaConfig};
use crate::model::{AgentRegistration, FeatureFlag, TdaContext};
use crate::processor::Processor;
use crate::table::Table;

use super::{Readiness, RecordHandler, StateQueries};

pub use admin::{ensure_copartitioned, ensure_partitions, ensure_topics};
pub use committer::Committer;
pub use patterns_loader::restore_and_follow as restore_learned_patterns;

/// The tables every instance loads in full from compacted topics, like `GlobalKTable`s.
#[derive(Clone, Default)]
pub struct Tables {
    /// `tda.context`: per-source baselines, joined onto anomalies.
    pub contexts: Arc<Table<TdaContext>>,
    /// `agent.registry`: the live agents routing and dispatch choose from.
    pub registry: Arc<Table<AgentRegistration>>,
    /// `orchestration.flags`: feature flags.
    pub flags: Arc<Table<FeatureFlag>>,
}

impl Tables {
    /// Whether every table has been read up to the end it had at start-up.
    pub fn restored(&self) -> bool {
        self.contexts.is_restored() && self.registry.is_restored() && self.flags.is_restored()
    }
}

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
    #[error("topic {topic} shows no partitions {waited_s} s after it was created; the broker's metadata \
             is not settling: check the broker's health and logs, then start again")]
    NoPartitionsVisible { topic: String, waited_s: u64 },
    #[error("topic {topic} must be compacted (cleanup.policy=compact) to hold store state, but has cleanup.policy={found}")]
    NotCompacted { topic: String, found: String },
    #[error("the consumer has no group metadata (not a group member yet)")]
    NoGroupMetadata,
    #[error("an output was not delivered; offsets were not committed")]
    DeliveryFailed,
    #[error(
        "this member lost its partitions (session or poll timeout); its transaction was aborted"
    )]
    AssignmentLost,
    #[error("a partition task failed inside a record; its transaction was aborted")]
    Abandoned,
    #[error("partition task {partition} of sub-topology {subtopology} panicked: {message}")]
    TaskPanicked {
        subtopology: usize,
        partition: i32,
        message: String,
    },
}

/// Runs until `shutdown` turns true. Transient failures (a failed commit, a fenced producer,
/// a broker restart) restart the loop from the last committed offsets with backoff.
pub async fn run(
    config: &Config,
    settings: KafkaSettings,
    handler: RecordHandler,
    tables: Tables,
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
        &[&topics.context, &topics.registry, &topics.flags],
        &[("cleanup.policy", "compact")],
    )
    .await?;

    // One loader per table, each retried on its own until shutdown.
    macro_rules! load {
        ($topic:expr, $table:expr) => {
            tokio::spawn(table_loader::run_until_shutdown(
                table_loader::Load {
                    kafka: settings.kafka.clone(),
                    topic: $topic.clone(),
                    dead_letters: topics.dead_letters.clone(),
                    codec: handler.codec().clone(),
                    table: $table.clone(),
                    metrics: handler.metrics().clone(),
                },
                readiness.clone(),
                shutdown.clone(),
            ))
        };
    }
    let loaders = [
        load!(topics.context, tables.contexts),
        load!(topics.registry, tables.registry),
        load!(topics.flags, tables.flags),
    ];
    let restored = {
        let (tables, readiness) = (tables.clone(), readiness.clone());
        tokio::spawn(async move {
            while !tables.restored() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            readiness.set_tables_restored();
        })
    };

    let mut backoff = RestartBackoff::default();
    loop {
        let started = std::time::Instant::now();
        let ended = stream::run_generation(&settings, &handler, &readiness, &mut shutdown).await;
        let backoff = backoff.after(started.elapsed());
        match ended {
            Ok(stream::Ended::Shutdown) => break,
            Ok(stream::Ended::Restart) => {
                warn!(
                    backoff_ms = backoff.as_millis() as u64,
                    "restarting the stream loop"
                );
                readiness.restarted("the stream loop restarted (see the log)".into());
            }
            Err(error) => {
                warn!(%error, backoff_ms = backoff.as_millis() as u64, "stream loop failed; retrying");
                readiness.restarted(error.to_string());
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
    }
    restored.abort();
    for loader in loaders {
        if let Err(e) = loader.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    info!("stopped");
    Ok(())
}

/// The wait before the stream loop starts again: doubling from 100 ms to 10 s while
/// generations keep failing, and back to 100 ms after one that ran healthily for a minute,
/// so an instance that failed seven times last week does not wait 10 s today.
#[derive(Debug)]
struct RestartBackoff {
    next: Duration,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl RestartBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);
    const HEALTHY: Duration = Duration::from_secs(60);

    /// The wait after a generation that ran for `ran_for`.
    fn after(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= Self::HEALTHY {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_backoff_grows_caps_and_resets_after_a_healthy_run() {
        let mut b = RestartBackoff::default();
        let quick = Duration::from_secs(1);
        let waits: Vec<u64> = (0..9).map(|_| b.after(quick).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(b.after(Duration::from_secs(61)), Duration::from_millis(100));
        assert_eq!(b.after(quick), Duration::from_millis(200));
    }
}
