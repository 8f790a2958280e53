//! The baseline `aura bench --mode passthrough` measures: a plain consume-and-produce loop that
//! copies each anomaly's bytes to the command topic, on the same broker, with the same librdkafka
//! settings, guarantee and commit interval as the service, and nothing of Aura (no decoding, no
//! processing, no partition tasks). Its latency is the floor the broker and the commit protocol
//! set; the service's latency minus this is what Aura costs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::config::{Config, ProcessingGuarantee};
use crate::runtime::kafka::{clients, ensure_topics};
use crate::runtime::Readiness;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Copies `topics.anomalies` to `topics.commands` until `shutdown` turns true.
pub async fn run(
    config: &Config,
    readiness: Arc<Readiness>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    ensure_topics(&config.kafka, &[&config.topics.commands], &[]).await?;
    let config = config.clone();
    tokio::task::spawn_blocking(move || copy_loop(&config, &readiness, &shutdown))
        .await
        .context("the passthrough loop panicked")?
}

fn copy_loop(
    config: &Config,
    readiness: &Readiness,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let kafka = &config.kafka;
    let eos = kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
    let consumer: BaseConsumer = clients::stream_consumer(kafka, "passthrough").create()?;
    consumer.subscribe(&[&config.topics.anomalies])?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        clients::producer(kafka, "passthrough", 0).create()?;
    if eos {
        producer.init_transactions(TIMEOUT)?;
        producer.begin_transaction()?;
    }
    let interval = Duration::from_millis(kafka.commit_interval_ms);
    // The next offset to commit, by partition, for records produced since the last commit.
    let mut pending: HashMap<i32, i64> = HashMap::new();
    let mut last_commit = Instant::now();
    readiness.set_running(true);
    readiness.set_tables_restored(); // it has none
    while !*shutdown.borrow() {
        if readiness.assigned() == 0 {
            readiness.set_assigned(consumer.assignment()?.count() as i64);
        }
        if let Some(message) = consumer.poll(Duration::from_millis(1)) {
            let m = message?;
            let mut record = BaseRecord::<[u8], [u8]>::to(&config.topics.commands);
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            if let Some(value) = m.payload() {
                record = record.payload(value);
            }
            producer.send(record).map_err(|(e, _)| e)?;
            pending.insert(m.partition(), m.offset() + 1);
        }
        if pending.is_empty() || last_commit.elapsed() < interval {
            continue;
        }
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in pending.drain() {
            offsets.add_partition_offset(
                &config.topics.anomalies,
                partition,
                Offset::Offset(next),
            )?;
        }
        if eos {
            let group = consumer
                .group_metadata()
                .context("the consumer has no group metadata")?;
            producer.send_offsets_to_transaction(&offsets, &group, TIMEOUT)?;
            producer.commit_transaction(TIMEOUT)?;
            producer.begin_transaction()?;
        } else {
            producer.flush(TIMEOUT)?;
            consumer.commit(&offsets, rdkafka::consumer::CommitMode::Async)?;
        }
        last_commit = Instant::now();
    }
    if eos {
        producer.abort_transaction(TIMEOUT)?;
    }
    Ok(())
}
