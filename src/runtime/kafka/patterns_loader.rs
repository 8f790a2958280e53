//! The learned pattern library as a global table (`semantic::learned`): restored in full from
//! `<group.id>-patterns-changelog` before the stream loop starts, as Kafka Streams bootstraps
//! its global stores before any stream thread runs, then followed until shutdown, so what any
//! instance learns reaches every instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::config::KafkaConfig;
use crate::semantic::learned::LearnedPattern;
use crate::semantic::Engine;

use super::table_loader::EofIsNormal;
use super::{clients, ensure_topics, RuntimeError};

/// Creates the compacted changelog if missing, applies every record in it to `engine`, and
/// returns once the end it had at start-up is reached; a task keeps applying new records
/// until `shutdown`.
pub async fn restore_and_follow(
    kafka: &KafkaConfig,
    topic: &str,
    engine: Arc<Engine>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, RuntimeError> {
    ensure_topics(kafka, &[topic], &[("cleanup.policy", "compact")]).await?;
    let consumer: StreamConsumer<EofIsNormal> = clients::table_consumer(kafka)
        .create_with_context(EofIsNormal)
        .map_err(|e| RuntimeError::Client {
            what: "patterns changelog consumer",
            source: e,
        })?;
    let broker = |what| move |source| RuntimeError::Broker { what, source };
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(broker("patterns changelog metadata"))?;
    if metadata.topics().iter().all(|t| t.partitions().is_empty()) {
        // Just created: the broker shows no partitions for a moment. The caller retries.
        return Err(RuntimeError::TopicCreation {
            topic: topic.to_string(),
            reason: "no partitions visible yet".into(),
        });
    }
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        assignment
            .add_partition_offset(topic, p.id(), Offset::Beginning)
            .expect("a fresh offset is valid");
        let (low, high) = consumer
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(broker("patterns changelog watermarks"))?;
        if high > low {
            remaining.insert(p.id(), high);
        }
    }
    consumer
        .assign(&assignment)
        .map_err(broker("patterns changelog assign"))?;
    let (restored_tx, restored) = oneshot::channel();
    let mut restored_tx = Some(restored_tx);
    let topic = topic.to_string();
    let task = tokio::spawn(async move {
        let mut applied = 0u64;
        loop {
            if remaining.is_empty() {
                if let Some(tx) = restored_tx.take() {
                    info!(
                        topic,
                        records = applied,
                        version = engine.library_version(),
                        "learned patterns restored"
                    );
                    let _ = tx.send(());
                }
            }
            let m = tokio::select! {
                _ = shutdown.changed() => return,
                m = consumer.recv() => m,
            };
            let m = match m {
                Ok(m) => m,
                Err(KafkaError::PartitionEOF(p)) => {
                    remaining.remove(&p);
                    continue;
                }
                Err(error) => {
                    warn!(topic, %error, "patterns changelog consume error");
                    continue;
                }
            };
            if remaining
                .get(&m.partition())
                .is_some_and(|&high| m.offset() + 1 >= high)
            {
                remaining.remove(&m.partition());
            }
            let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                warn!(
                    topic,
                    partition = m.partition(),
                    offset = m.offset(),
                    "patterns changelog record without a UTF-8 key skipped"
                );
                continue;
            };
            let record = match m.payload().map(|v| LearnedPattern::from_bytes(key, v)) {
                None => None,
                Some(Ok(record)) => Some(record),
                Some(Err(error)) => {
                    // Only this service writes the changelog: a bad record is a bug to log, and
                    // the pattern keeps what it had.
                    warn!(topic, partition = m.partition(), offset = m.offset(), %error, "patterns changelog record skipped");
                    continue;
                }
            };
            applied += 1;
            if engine.apply_learned(key, record.as_ref()) {
                info!(
                    pattern = key,
                    version = engine.library_version(),
                    "learned pattern applied"
                );
            }
        }
    });
    // The service routes with the learned library from its first record, or not at all.
    let _ = restored.await;
    Ok(task)
}
