//! Loads a compacted topic into a [`Table`] and keeps it current, like a `GlobalKTable`:
//! every partition, from the beginning, on every instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::codec::{AvroRecord, Codec};
use crate::config::KafkaConfig;
use crate::table::Table;
use crate::telemetry::Metrics;

use super::{clients, RuntimeError};

/// The end of a partition is how the loader knows the table is restored, not an error
/// worth logging.
pub struct EofIsNormal;

impl ClientContext for EofIsNormal {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            warn!(%error, reason, "table consumer error");
        }
    }
}

impl ConsumerContext for EofIsNormal {}

/// Reads `topic` into `table` until `shutdown`. The table is marked restored once every
/// partition has been read up to the end it had when loading began.
pub async fn run<V: AvroRecord + Send + Sync + 'static>(
    kafka: KafkaConfig,
    topic: String,
    codec: Codec,
    table: Arc<Table<V>>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let consumer: StreamConsumer<EofIsNormal> = clients::table_consumer(&kafka)
        .create_with_context(EofIsNormal)
        .map_err(|e| RuntimeError::Client {
            what: "table consumer",
            source: e,
        })?;
    let metadata = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .map_err(|e| RuntimeError::Broker {
            what: "table metadata",
            source: e,
        })?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for &p in &partitions {
        assignment
            .add_partition_offset(&topic, p, Offset::Beginning)
            .expect("a fresh offset is valid");
        let (low, high) = consumer
            .fetch_watermarks(&topic, p, Duration::from_secs(10))
            .map_err(|e| RuntimeError::Broker {
                what: "table watermarks",
                source: e,
            })?;
        if high > low {
            remaining.insert(p, high);
        }
    }
    consumer
        .assign(&assignment)
        .map_err(|e| RuntimeError::Broker {
            what: "table assign",
            source: e,
        })?;
    if remaining.is_empty() {
        table.mark_restored();
        info!(topic, rows = table.len(), "table loaded");
    }
    loop {
        let message = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            m = consumer.recv() => m,
        };
        let m = match message {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(p)) => {
                remaining.remove(&p);
                if remaining.is_empty() && !table.is_restored() {
                    table.mark_restored();
                    info!(topic, rows = table.len(), "table loaded");
                }
                continue;
            }
            Err(error) => {
                warn!(topic, %error, "table consume error");
                continue;
            }
        };
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            warn!(
                topic,
                partition = m.partition(),
                offset = m.offset(),
                "table record without a UTF-8 key skipped"
            );
            continue;
        };
        match m.payload() {
            None => table.apply(key.to_string(), None),
            Some(bytes) => match codec.decode::<V>(bytes).await {
                Ok(value) => table.apply(key.to_string(), Some(value)),
                Err(error) => {
                    metrics
                        .dead_letters
                        .with_label_values(&["DECODE", error.class()])
                        .inc();
                    warn!(topic, partition = m.partition(), offset = m.offset(), %error, "table record skipped");
                }
            },
        }
        if let Some(high) = remaining.get(&m.partition()) {
            if m.offset() + 1 >= *high {
                remaining.remove(&m.partition());
                if remaining.is_empty() && !table.is_restored() {
                    table.mark_restored();
                    info!(topic, rows = table.len(), "table loaded");
                }
            }
        }
    }
}
