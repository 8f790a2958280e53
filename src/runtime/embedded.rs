//! An in-memory log with Kafka's semantics (topics, partitions, offsets, keys), for the demo
//! and fast tests. Not durable: it lives as long as the process.
//!
//! Delivery rule: a partition's outputs and its consumed offset are applied under one lock
//! ([`EmbeddedLog::commit`]), so processing is exactly-once by construction.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{InputRecord, OutputRecord};

#[derive(Default)]
struct Topic {
    partitions: Vec<Vec<InputRecord>>,
}

#[derive(Default)]
struct Inner {
    topics: HashMap<String, Topic>,
    /// Committed next offset per (group, topic, partition).
    offsets: HashMap<(String, String, i32), i64>,
}

/// Topics in memory. Cheap to share behind an `Arc`.
#[derive(Default)]
pub struct EmbeddedLog {
    inner: Mutex<Inner>,
}

impl EmbeddedLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `name` with `partitions` partitions; a no-op if it exists.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        inner
            .topics
            .entry(name.to_string())
            .or_insert_with(|| Topic {
                partitions: (0..partitions.max(1)).map(|_| Vec::new()).collect(),
            });
    }

    pub fn partitions(&self, topic: &str) -> i32 {
        let inner = self.inner.lock().expect("log lock poisoned");
        inner
            .topics
            .get(topic)
            .map_or(0, |t| t.partitions.len() as i32)
    }

    /// Appends a record to the partition its key hashes to (creating the topic with one
    /// partition if missing) and returns its (partition, offset).
    pub fn append(&self, record: OutputRecord, timestamp_ms: i64) -> (i32, i64) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        append_locked(&mut inner, record, timestamp_ms)
    }

    /// Up to `max` records of one partition from `offset` on.
    pub fn read(&self, topic: &str, partition: i32, offset: i64, max: usize) -> Vec<InputRecord> {
        let inner = self.inner.lock().expect("log lock poisoned");
        let Some(log) = inner
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
        else {
            return Vec::new();
        };
        let start = (offset.max(0) as usize).min(log.len());
        log[start..start.saturating_add(max).min(log.len())].to_vec()
    }

    /// Every record of a topic, partition by partition.
    pub fn read_all(&self, topic: &str) -> Vec<InputRecord> {
        let inner = self.inner.lock().expect("log lock poisoned");
        inner
            .topics
            .get(topic)
            .map_or_else(Vec::new, |t| t.partitions.concat())
    }

    pub fn end_offset(&self, topic: &str, partition: i32) -> i64 {
        let inner = self.inner.lock().expect("log lock poisoned");
        inner
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .map_or(0, |p| p.len() as i64)
    }

    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> i64 {
        let inner = self.inner.lock().expect("log lock poisoned");
        let key = (group.to_string(), topic.to_string(), partition);
        inner.offsets.get(&key).copied().unwrap_or(0)
    }

    /// Appends `outputs` with no input offset to move (a timer's outputs), atomically.
    pub fn append_all(&self, outputs: Vec<OutputRecord>, timestamp_ms: i64) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        for output in outputs {
            append_locked(&mut inner, output, timestamp_ms);
        }
    }

    /// Appends `outputs` and moves the group's offset to `next_offset`, atomically.
    pub fn commit(
        &self,
        group: &str,
        input: (&str, i32),
        next_offset: i64,
        outputs: Vec<OutputRecord>,
        timestamp_ms: i64,
    ) {
        let mut inner = self.inner.lock().expect("log lock poisoned");
        for output in outputs {
            append_locked(&mut inner, output, timestamp_ms);
        }
        inner.offsets.insert(
            (group.to_string(), input.0.to_string(), input.1),
            next_offset,
        );
    }
}

fn append_locked(inner: &mut Inner, record: OutputRecord, timestamp_ms: i64) -> (i32, i64) {
    let topic = inner
        .topics
        .entry(record.topic.clone())
        .or_insert_with(|| Topic {
            partitions: vec![Vec::new()],
        });
    // Kafka's default partitioner, so a key lands where it would on a broker (docs/KEYS.md).
    let n = topic.partitions.len() as i32;
    let partition = record.partition.unwrap_or_else(|| {
        record
            .key
            .as_ref()
            .map_or(0, |k| super::partitioner::partition_for(k, n))
    });
    let log = &mut topic.partitions[partition as usize];
    let offset = log.len() as i64;
    log.push(InputRecord {
        topic: record.topic,
        partition,
        offset,
        key: record.key,
        value: record.value,
        timestamp_ms: Some(timestamp_ms),
        headers: record.headers,
    });
    (partition, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, key: &str) -> OutputRecord {
        OutputRecord {
            partition: None,
            topic: topic.into(),
            key: Some(key.into()),
            value: Some(vec![1]),
            headers: vec![],
        }
    }

    #[test]
    fn one_key_stays_in_one_partition_in_order() {
        let log = EmbeddedLog::new();
        log.create_topic("t", 4);
        let (p1, o1) = log.append(rec("t", "k"), 0);
        let (p2, o2) = log.append(rec("t", "k"), 0);
        assert_eq!((p1, o1 + 1), (p2, o2));
        assert_eq!(log.read("t", p1, 0, 10).len(), 2);
    }

    #[test]
    fn commit_moves_outputs_and_offset_together() {
        let log = EmbeddedLog::new();
        log.create_topic("in", 1);
        log.append(rec("in", "k"), 0);
        log.commit("g", ("in", 0), 1, vec![rec("out", "k")], 0);
        assert_eq!(log.committed("g", "in", 0), 1);
        assert_eq!(log.read_all("out").len(), 1);
    }
}
