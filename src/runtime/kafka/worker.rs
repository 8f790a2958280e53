//! One task per partition of a sub-topology: restore the processor's stores from their
//! changelogs, then process records in offset order, one at a time, and fire timers on ticks.
//! Between two records a task with stores answers state queries (see [`crate::runtime::queries`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;
use tracing::info;

use crate::config::KafkaConfig;
use crate::processor::Processor;
use crate::runtime::queries::Query;
use crate::runtime::{InputRecord, Readiness, RecordHandler, StateQueries};

use super::committer::Committer;
use super::table_loader::EofIsNormal;
use super::{clients, RuntimeError};

/// How often a task fires its processor's due timers.
const TICK: Duration = Duration::from_millis(20);

/// State queries a task may have waiting; more wait for room (they are rare and small).
const QUERY_QUEUE: usize = 16;

/// Everything one task needs.
pub struct Task {
    pub partition: i32,
    pub records: mpsc::Receiver<InputRecord>,
    pub handler: RecordHandler,
    pub committer: Arc<Committer>,
    pub processor: Box<dyn Processor>,
    pub failures: mpsc::Sender<RuntimeError>,
    pub kafka: KafkaConfig,
    pub readiness: Arc<Readiness>,
    pub queries: Arc<StateQueries>,
}

/// Runs until the channel closes or the partition is revoked.
///
/// Decoding may wait on the registry, so it happens outside the commit gate; processing and
/// handing outputs to the producer happen inside it, so a commit sees a record with all of
/// its outputs, and its state changes, or none of them.
pub async fn run(task: Task) {
    let Task {
        partition,
        mut records,
        handler,
        committer,
        processor,
        failures,
        kafka,
        readiness,
        queries,
    } = task;
    let epoch = committer.epoch();
    // Held until the task returns, however it returns: dropping it unregisters the task.
    let registration =
        (!processor.stores().is_empty()).then(|| queries.register(processor.stores(), partition));
    let mut processor = if processor.stores().is_empty() {
        processor
    } else {
        readiness.restoring(1);
        let restore_started = Instant::now();
        let internal = handler.internal_topics().clone();
        let restored = tokio::task::spawn_blocking(move || {
            let mut processor = processor;
            let changelogs: Vec<(&'static str, String)> = processor
                .stores()
                .iter()
                .map(|s| (*s, internal.changelog(s)))
                .collect();
            restore(&kafka, partition, &changelogs, processor.as_mut())
                .map(|records| (processor, records))
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        readiness.restoring(-1);
        match restored {
            Ok((p, records)) => {
                let m = handler.metrics();
                m.restored_records.inc_by(records);
                m.restore_seconds
                    .observe(restore_started.elapsed().as_secs_f64());
                p
            }
            Err(error) => {
                let _ = failures.send(error).await;
                return;
            }
        }
    };
    // Timers are part of a processor's state, so only processors with stores have any.
    let has_timers = !processor.stores().is_empty();
    let (query_tx, mut asked) = mpsc::channel::<Query>(QUERY_QUEUE);
    if let Some(registration) = &registration {
        registration.ready(query_tx);
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let outcome = tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { return };
                let started = Instant::now();
                handler.metrics().records_in.with_label_values(&[&record.topic]).inc();
                let decoded = handler.decode(&record).await;
                let _gate = committer.enter();
                if committer.epoch() != epoch {
                    return; // revoked: the next owner processes what is left
                }
                let outputs = handler.handle(processor.as_mut(), &record, decoded, crate::clock::now_ms(), started);
                outputs.iter().try_for_each(|o| committer.send(o)).map(|()| committer.record_done(&record))
            }
            _ = tick.tick(), if has_timers => {
                let _gate = committer.enter();
                if committer.epoch() != epoch {
                    return;
                }
                let outputs = handler.tick(processor.as_mut(), partition, crate::clock::now_ms());
                outputs.iter().try_for_each(|o| committer.send(o))
            }
            Some(query) = asked.recv(), if registration.is_some() => {
                if committer.epoch() != epoch {
                    return; // revoked: the state may already be moving elsewhere
                }
                let _ = query.reply.send(processor.query(&query.store, &query.key));
                Ok(())
            }
        };
        if let Err(error) = outcome {
            let _ = failures.send(error).await;
            return;
        }
    }
}

/// Reads each store's changelog partition from the beginning to its current end into the
/// processor. Only committed records are read, so an aborted transaction's state never is.
fn restore(
    kafka: &KafkaConfig,
    partition: i32,
    changelogs: &[(&'static str, String)],
    processor: &mut dyn Processor,
) -> Result<u64, RuntimeError> {
    let started = Instant::now();
    let mut records = 0u64;
    for (store, topic) in changelogs {
        // A consumer per changelog: events of one store's partition (an end-of-partition, a
        // fetched record) left in a shared consumer's queue would end or corrupt the next
        // store's restore, as every store of a task has the same partition number.
        let consumer: BaseConsumer<EofIsNormal> = clients::restore_consumer(kafka)
            .create_with_context(EofIsNormal)
            .map_err(|e| RuntimeError::Client {
                what: "restore consumer",
                source: e,
            })?;
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .map_err(|e| RuntimeError::Broker {
                what: "changelog watermarks",
                source: e,
            })?;
        if high <= low {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Beginning)
            .expect("a fresh offset is valid");
        consumer.assign(&tpl).map_err(|e| RuntimeError::Broker {
            what: "changelog assign",
            source: e,
        })?;
        loop {
            // Short: when the partition ends in transaction markers, no record and sometimes
            // no end-of-partition event says so, and only an empty poll leads to the position.
            match consumer.poll(Duration::from_millis(10)) {
                Some(Ok(m)) => {
                    let key = m
                        .key()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .unwrap_or_default();
                    processor.restore(store, key, m.payload());
                    records += 1;
                    if m.offset() + 1 >= high {
                        break;
                    }
                }
                // Transaction markers take offsets too, so the last record can end before
                // `high`: the partition's end says the rest.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    return Err(RuntimeError::Broker {
                        what: "changelog read",
                        source: e,
                    })
                }
                None if position(&consumer, topic, partition).unwrap_or(low) >= high => break,
                None => {}
            }
        }
    }
    info!(
        partition,
        records,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stores restored"
    );
    Ok(records)
}

/// The consumer's next offset in `topic`'s `partition`, once it has one.
fn position(consumer: &BaseConsumer<EofIsNormal>, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    positions
        .find_partition(topic, partition)?
        .offset()
        .to_raw()
}
