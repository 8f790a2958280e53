//! A task's restore: each store's changelog partition, read from the beginning to its current
//! end into the processor, before the task takes any input.
//!
//! A record the processor cannot read back (one of another version, say) loses the state it
//! held. The processor drops the key, and the record goes to the dead-letter topic with the
//! reason, followed by a tombstone for its key in the same transaction: the changelog then says
//! what memory holds, the next restore finds the key deleted, and compaction drops the record.
//! So each lost state is dead-lettered once, however often the partition moves. A refused
//! record that a later record of its key replaced lost nothing, and is not reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::KafkaConfig;
use crate::dead_letter::Rejection;
use crate::processor::Processor;
use crate::runtime::{InputRecord, OutputRecord, RecordHandler};

use super::table_loader::EofIsNormal;
use super::{clients, RuntimeError};

/// What a restore read.
#[derive(Debug, Default)]
pub struct Restored {
    /// Changelog records applied or refused.
    pub records: u64,
    /// The refused records that are still their key's last record, by (changelog, key).
    lost: HashMap<(String, Vec<u8>), Refused>,
}

#[derive(Debug)]
struct Refused {
    record: InputRecord,
    reason: String,
}

impl Restored {
    /// How many states the restore could not read back.
    pub fn lost(&self) -> usize {
        self.lost.len()
    }

    /// For each lost state, in changelog order: its dead letter, then a tombstone for its key.
    pub fn outputs(self, handler: &RecordHandler, now_ms: i64) -> Vec<OutputRecord> {
        let mut lost: Vec<Refused> = self.lost.into_values().collect();
        lost.sort_by(|a, b| {
            (&a.record.topic, a.record.offset).cmp(&(&b.record.topic, b.record.offset))
        });
        let mut outputs = Vec::with_capacity(lost.len() * 2);
        for Refused { record, reason } in lost {
            let rejection = Rejection::changelog_unreadable(reason);
            outputs.push(handler.dead_letter(rejection, &record, now_ms));
            outputs.push(OutputRecord {
                topic: record.topic,
                partition: Some(record.partition),
                key: record.key,
                value: None,
                headers: vec![],
            });
        }
        outputs
    }

    /// Applies one changelog record of `store` to `processor`, or keeps it as refused (with a
    /// warning) when the processor cannot read it back.
    pub fn apply(&mut self, processor: &mut dyn Processor, store: &str, record: InputRecord) {
        let key = record
            .key
            .as_deref()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or_default();
        match processor.try_restore(store, key, record.value.as_deref()) {
            Ok(()) => self.readable(&record.topic, record.key.as_deref()),
            Err(unreadable) => {
                warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
                    key, reason = %unreadable, "changelog record unreadable: its state is dropped");
                self.refused(record, unreadable.0);
            }
        }
        self.records += 1;
    }

    /// Keeps a refused record until a later record of the same key replaces it.
    fn refused(&mut self, record: InputRecord, reason: String) {
        let id = (record.topic.clone(), record.key.clone().unwrap_or_default());
        self.lost.insert(id, Refused { record, reason });
    }

    /// A readable record replaces any refused one of its key.
    fn readable(&mut self, topic: &str, key: Option<&[u8]>) {
        if !self.lost.is_empty() {
            let id = (topic.to_string(), key.unwrap_or_default().to_vec());
            self.lost.remove(&id);
        }
    }
}

/// Reads each store's changelog partition from the beginning to its current end into the
/// processor. Only committed records are read, so an aborted transaction's state never is.
pub fn restore(
    kafka: &KafkaConfig,
    partition: i32,
    changelogs: &[(&'static str, String)],
    processor: &mut dyn Processor,
) -> Result<Restored, RuntimeError> {
    let started = Instant::now();
    let mut restored = Restored::default();
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
                    let last = m.offset() + 1 >= high;
                    restored.apply(processor, store, super::stream::to_record(&m));
                    if last {
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
        records = restored.records,
        lost = restored.lost(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stores restored"
    );
    Ok(restored)
}

/// The consumer's next offset in `topic`'s `partition`, once it has one.
fn position(consumer: &BaseConsumer<EofIsNormal>, topic: &str, partition: i32) -> Option<i64> {
    let positions = consumer.position().ok()?;
    positions
        .find_partition(topic, partition)?
        .offset()
        .to_raw()
}
