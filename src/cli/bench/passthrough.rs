//! The baseline `aura bench --mode passthrough` measures: one loop that copies each anomaly's
//! bytes to the command topic, committed exactly as the service commits (the same producers,
//! guarantee, commit interval and transaction protocol), and nothing else of Aura: no decoding,
//! no processing, no partition tasks. Its latency is the floor that the broker and the commit
//! protocol set; the service's latency minus this is what Aura's processing costs.
//!
//! It shares the service's committer on purpose. A plain loop on librdkafka's defaults (one
//! transactional producer, `commit_transaction` after its own flush) measured 68 ms at p50 on
//! this bench: that would compare Aura with librdkafka's pitfalls, not with the broker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tokio::sync::watch;

use crate::config::Config;
use crate::runtime::kafka::{clients, ensure_topics, Committer};
use crate::runtime::{InputRecord, OutputRecord, Readiness};
use crate::telemetry::Metrics;

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
    let consumer: BaseConsumer = clients::stream_consumer(kafka, "passthrough").create()?;
    consumer.subscribe(&[&config.topics.anomalies])?;
    let committer = Committer::new(
        kafka.processing_guarantee,
        |slot| clients::producer(kafka, "passthrough", slot),
        Metrics::new(),
    )?;
    let interval = Duration::from_millis(kafka.commit_interval_ms);
    let mut last_commit = Instant::now();
    readiness.set_running(true);
    readiness.set_tables_restored(); // it has none
    while !*shutdown.borrow() {
        if readiness.assigned() == 0 {
            readiness.set_assigned(consumer.assignment()?.count() as i64);
        }
        if let Some(message) = consumer.poll(Duration::from_millis(1)) {
            let m = message?;
            let copy = OutputRecord {
                partition: None,
                topic: config.topics.commands.clone(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: Vec::new(),
            };
            let input = InputRecord {
                topic: m.topic().to_string(),
                partition: m.partition(),
                offset: m.offset(),
                key: None,
                value: None,
                timestamp_ms: m.timestamp().to_millis(),
                headers: Vec::new(),
            };
            let _gate = committer.enter();
            committer.send(&copy)?;
            committer.record_done(&input);
        }
        if last_commit.elapsed() >= interval {
            committer.commit(&consumer)?;
            last_commit = Instant::now();
        }
    }
    committer.commit(&consumer)?;
    Ok(())
}
