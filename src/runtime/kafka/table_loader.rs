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

use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::codec::{AvroRecord, Codec};
use crate::config::KafkaConfig;
use crate::dead_letter::{stage_label, Rejection};
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

/// What one table load reads, and where it puts it.
pub struct Load<V: AvroRecord + Send + Sync + 'static> {
    pub kafka: KafkaConfig,
    pub topic: String,
    pub dead_letters: String,
    pub codec: Codec,
    pub table: Arc<Table<V>>,
    pub metrics: Metrics,
}

/// [`run`], started again with backoff whenever it fails (a broker unreachable at start-up
/// must not leave the table unloaded, and the instance unready, for good), until `shutdown`.
/// Each failure is shown by `/readyz` until the table loads.
pub async fn run_until_shutdown<V: AvroRecord + Send + Sync + 'static>(
    load: Load<V>,
    readiness: Arc<crate::runtime::Readiness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let attempt = run(
            load.kafka.clone(),
            load.topic.clone(),
            load.dead_letters.clone(),
            load.codec.clone(),
            load.table.clone(),
            load.metrics.clone(),
            shutdown.clone(),
        );
        let error = match attempt.await {
            Ok(()) => return,
            Err(error) => error,
        };
        warn!(topic = %load.topic, %error, backoff_ms = backoff.as_millis() as u64, "table load failed; retrying");
        load.metrics
            .transient_retries
            .with_label_values(&["table_load"])
            .inc();
        if !load.table.is_restored() {
            readiness.set_table_error(format!("{}: {error}", load.topic));
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Reads `topic` into `table` until `shutdown`. The table is marked restored once every
/// partition has been read up to the end it had when loading began. Records that cannot be
/// read go to `dead_letters`, and the table goes on without them.
pub async fn run<V: AvroRecord + Send + Sync + 'static>(
    kafka: KafkaConfig,
    topic: String,
    dead_letters: String,
    codec: Codec,
    table: Arc<Table<V>>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RuntimeError> {
    let poison = Poison {
        producer: clients::dead_letter_producer(&kafka)
            .create()
            .map_err(|e| RuntimeError::Client {
                what: "dead-letter producer",
                source: e,
            })?,
        topic: dead_letters,
        codec: codec.clone(),
        metrics: metrics.clone(),
    };
    let consumer: StreamConsumer<EofIsNormal> = clients::table_consumer(&kafka)
        .create_with_context(EofIsNormal)
        .map_err(|e| RuntimeError::Client {
            what: "table consumer",
            source: e,
        })?;
    // A topic created a moment ago (the service creates missing tables at start-up) can show
    // no partitions yet; reading none would leave the table empty for good.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let partitions: Vec<i32> = loop {
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
        if !partitions.is_empty() || std::time::Instant::now() > deadline {
            break partitions;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
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
        match (
            m.key().and_then(|k| std::str::from_utf8(k).ok()),
            m.payload(),
        ) {
            (None, _) => {
                let why = Rejection::decode("key_not_utf8", "a table record needs a UTF-8 key");
                poison.send(why, &m).await;
            }
            (Some(key), None) => table.apply(key.to_string(), None),
            (Some(key), Some(bytes)) => match codec.decode::<V>(bytes).await {
                Ok(value) => table.apply(key.to_string(), Some(value)),
                Err(error) => {
                    let why = Rejection::decode(error.class(), error.to_string());
                    poison.send(why, &m).await;
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

/// Where the loader sends table records it cannot read: the dead-letter topic, as for any
/// other poison. Sent outside any transaction (no task owns a table), and awaited, since
/// poison is rare.
struct Poison {
    producer: FutureProducer,
    topic: String,
    codec: Codec,
    metrics: Metrics,
}

impl Poison {
    async fn send(&self, rejection: Rejection, m: &BorrowedMessage<'_>) {
        self.metrics
            .dead_letters
            .with_label_values(&[stage_label(rejection.stage), &rejection.code])
            .inc();
        warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %rejection.reason, "table record sent to the dead-letter topic");
        let record = super::stream::to_record(m);
        let letter = rejection.into_dead_letter(&record, crate::clock::now_ms());
        let value = match self.codec.encode(&self.topic, &letter) {
            Ok(value) => value,
            Err(error) => {
                warn!(%error, "cannot encode a dead letter for a table record");
                return;
            }
        };
        let mut out = FutureRecord::to(&self.topic).payload(&value);
        if let Some(key) = &record.key {
            out = out.key(key);
        }
        if let Err((error, _)) = self.producer.send(out, Duration::from_secs(10)).await {
            warn!(%error, "cannot produce a dead letter for a table record");
        }
    }
}
