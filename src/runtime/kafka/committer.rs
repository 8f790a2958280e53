//! Commits outputs and input offsets together. This module is where the delivery rule lives.
//!
//! **exactly_once_v2.** Every output of every record is produced inside the open Kafka
//! transaction. A commit, every `commit.interval.ms`, adds the next input offset of each
//! partition processed since the last commit (`send_offsets_to_transaction`, with the
//! consumer's group metadata, so a zombie of an older group generation is fenced) and then
//! commits the transaction: outputs and offsets become visible to read_committed consumers
//! atomically, or not at all. Any failure aborts the transaction; the runtime then restarts
//! from the last committed offsets, and the aborted outputs are never seen.
//!
//! **at_least_once.** Outputs are produced at once (lowest latency). A commit first waits
//! until the broker has acknowledged every output produced so far (`flush`), and only then
//! commits the input offsets. A crash between the two replays records whose outputs already
//! exist: duplicates are possible, loss is not.
//!
//! Two transactional producers take turns, one transaction each. After a commit, the
//! coordinator still writes the commit markers for a millisecond or so; a new transaction on
//! the same transactional id is refused meanwhile (CONCURRENT_TRANSACTIONS) and librdkafka
//! retries only after a fixed 20 ms. The other producer's id is free at once. Only one
//! transaction holds records at any time, so the order of commits is unchanged.
//!
//! Partition tasks hold the read side of a gate while they process one record and hand its
//! outputs to the producer; a commit takes the write side, so it never splits a record from
//! its outputs. The gate is a std lock held only across synchronous code, never an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tracing::{debug, warn};

use crate::config::ProcessingGuarantee;
use crate::runtime::{InputRecord, OutputRecord};
use crate::telemetry::Metrics;

use super::RuntimeError;

const TXN_TIMEOUT: Duration = Duration::from_secs(10);

/// Notes delivery failures, which at-least-once must see before it commits offsets.
pub struct DeliveryTracker {
    failed: AtomicBool,
}

impl ClientContext for DeliveryTracker {}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            warn!(%error, "output delivery failed; the next commit will not advance offsets");
            self.failed.store(true, Ordering::Release);
        }
    }
}

/// What has been processed since the last commit.
#[derive(Default)]
struct Progress {
    next_offsets: HashMap<(String, i32), i64>,
    /// Outputs were sent; with no input offsets they came from timers, and still need a commit.
    outputs_sent: bool,
    /// Input timestamps of the records in this commit, for the end-to-end histogram.
    timestamps_ms: Vec<i64>,
}

pub struct Committer {
    guarantee: ProcessingGuarantee,
    /// Used in turns under exactly-once (see the module doc); at-least-once uses the first.
    producers: Vec<ThreadedProducer<DeliveryTracker>>,
    /// Index of the producer that takes outputs now. Changes only under the write gate.
    active: AtomicUsize,
    gate: RwLock<()>,
    progress: Mutex<Progress>,
    /// Bumped on every revocation; a partition task of an older epoch stops.
    epoch: AtomicU64,
    metrics: Metrics,
}

impl Committer {
    /// Creates the producers and, under exactly-once, fences any predecessors with the same
    /// transactional ids and opens their first transactions. `config(slot)` is the client
    /// configuration of producer `slot`.
    pub fn new(
        guarantee: ProcessingGuarantee,
        config: impl Fn(usize) -> rdkafka::ClientConfig,
        metrics: Metrics,
    ) -> Result<Self, RuntimeError> {
        let slots = match guarantee {
            ProcessingGuarantee::ExactlyOnceV2 => 2,
            ProcessingGuarantee::AtLeastOnce => 1,
        };
        let mut producers = Vec::with_capacity(slots);
        for slot in 0..slots {
            let producer: ThreadedProducer<DeliveryTracker> = config(slot)
                .create_with_context(DeliveryTracker {
                    failed: AtomicBool::new(false),
                })
                .map_err(|e| RuntimeError::Client {
                    what: "producer",
                    source: e,
                })?;
            if guarantee == ProcessingGuarantee::ExactlyOnceV2 {
                producer
                    .init_transactions(Duration::from_secs(30))
                    .map_err(|e| RuntimeError::Broker {
                        what: "init transactions",
                        source: e,
                    })?;
                producer
                    .begin_transaction()
                    .map_err(|e| RuntimeError::Broker {
                        what: "begin transaction",
                        source: e,
                    })?;
            }
            producers.push(producer);
        }
        Ok(Self {
            guarantee,
            producers,
            active: AtomicUsize::new(0),
            gate: RwLock::new(()),
            progress: Mutex::new(Progress::default()),
            epoch: AtomicU64::new(0),
            metrics,
        })
    }

    fn producer(&self) -> &ThreadedProducer<DeliveryTracker> {
        &self.producers[self.active.load(Ordering::Acquire)]
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Entered by a partition task for the span of one record.
    pub fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().expect("commit gate poisoned")
    }

    /// Hands one output to the producer. Blocks briefly while the producer queue is full,
    /// which is back-pressure, not failure.
    pub fn send(&self, output: &OutputRecord) -> Result<(), RuntimeError> {
        let mut headers = OwnedHeaders::new_with_capacity(output.headers.len());
        for (name, value) in &output.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value),
            });
        }
        let mut record = BaseRecord::<Vec<u8>, Vec<u8>>::to(&output.topic).headers(headers);
        if let Some(value) = &output.value {
            record = record.payload(value);
        }
        if let Some(key) = &output.key {
            record = record.key(key);
        }
        if let Some(partition) = output.partition {
            record = record.partition(partition);
        }
        loop {
            match self.producer().send(record) {
                Ok(()) => {
                    self.progress
                        .lock()
                        .expect("progress lock poisoned")
                        .outputs_sent = true;
                    self.metrics
                        .records_out
                        .with_label_values(&[&output.topic])
                        .inc();
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => {
                    return Err(RuntimeError::Broker {
                        what: "produce",
                        source: e,
                    })
                }
            }
        }
    }

    /// Marks `record` processed: its offset goes into the next commit.
    pub fn record_done(&self, record: &InputRecord) {
        let mut p = self.progress.lock().expect("progress lock poisoned");
        p.next_offsets
            .insert((record.topic.clone(), record.partition), record.offset + 1);
        if let Some(ts) = record.timestamp_ms {
            p.timestamps_ms.push(ts);
        }
    }

    /// Commits everything processed so far; a no-op when nothing was. Blocking: call it from
    /// a blocking context. Returns whether anything was committed.
    pub fn commit<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<bool, RuntimeError> {
        let _exclusive = self.gate.write().expect("commit gate poisoned");
        self.commit_locked(consumer)
    }

    /// Commits, then stops every partition task: their partitions are being revoked.
    pub fn commit_and_revoke<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<bool, RuntimeError> {
        let _exclusive = self.gate.write().expect("commit gate poisoned");
        let result = self.commit_locked(consumer);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut p = self.progress.lock().expect("progress lock poisoned");
        *p = Progress::default();
        result
    }

    fn commit_locked<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<bool, RuntimeError> {
        let pending = std::mem::take(&mut *self.progress.lock().expect("progress lock poisoned"));
        if pending.next_offsets.is_empty() && !pending.outputs_sent {
            return Ok(false);
        }
        let mut offsets = TopicPartitionList::with_capacity(pending.next_offsets.len());
        for ((topic, partition), next) in &pending.next_offsets {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .expect("a fresh offset is valid");
        }
        let _span = crate::stage_span!(
            "commit",
            records = pending.timestamps_ms.len(),
            partitions = offsets.count()
        )
        .entered();
        let started = Instant::now();
        let result = match self.guarantee {
            ProcessingGuarantee::ExactlyOnceV2 => self.commit_transaction(consumer, &offsets),
            ProcessingGuarantee::AtLeastOnce => self.commit_after_delivery(consumer, &offsets),
        };
        let label = self.guarantee.to_string();
        self.metrics
            .commit_seconds
            .with_label_values(&[&label])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Ok(()) => {
                self.metrics
                    .transactions
                    .with_label_values(&["committed"])
                    .inc();
                let now_ms = crate::clock::now_ms();
                for ts in pending.timestamps_ms {
                    self.metrics
                        .end_to_end_seconds
                        .observe((now_ms - ts).max(0) as f64 / 1000.0);
                }
                debug!(partitions = offsets.count(), "committed");
            }
            Err(error) => {
                self.metrics
                    .transactions
                    .with_label_values(&["aborted"])
                    .inc();
                warn!(%error, "commit failed; aborting and restarting from the last committed offsets");
            }
        }
        result.map(|()| true)
    }

    fn commit_transaction<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<(), RuntimeError> {
        // Without group metadata the offsets cannot be fenced by generation: refuse.
        let group = consumer
            .group_metadata()
            .ok_or(RuntimeError::NoGroupMetadata)?;
        let has_offsets = offsets.count() > 0;
        let producer = self.producer();
        let attempt = || -> Result<(), KafkaError> {
            wait_delivered(producer)?;
            if has_offsets {
                producer.send_offsets_to_transaction(offsets, &group, TXN_TIMEOUT)?;
            }
            producer.commit_transaction(TXN_TIMEOUT)?;
            producer.begin_transaction()
        };
        attempt().map_err(|e| {
            // Best effort: a fenced or fatal producer cannot abort, and is rebuilt anyway.
            let _ = producer.abort_transaction(TXN_TIMEOUT);
            RuntimeError::Broker {
                what: "commit transaction",
                source: e,
            }
        })?;
        let next = (self.active.load(Ordering::Acquire) + 1) % self.producers.len();
        self.active.store(next, Ordering::Release);
        Ok(())
    }

    fn commit_after_delivery<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
        offsets: &TopicPartitionList,
    ) -> Result<(), RuntimeError> {
        wait_delivered(self.producer()).map_err(|e| RuntimeError::Broker {
            what: "flush outputs",
            source: e,
        })?;
        if self
            .producer()
            .context()
            .failed
            .swap(false, Ordering::AcqRel)
        {
            return Err(RuntimeError::DeliveryFailed);
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        consumer
            .commit(offsets, CommitMode::Async)
            .map_err(|e| RuntimeError::Broker {
                what: "commit offsets",
                source: e,
            })
    }
}

/// Waits until the broker has acknowledged every output `producer` has sent so far.
///
/// `Producer::flush` would poll for delivery reports itself, racing the producer's own
/// polling thread, and lose up to 100 ms per call whenever that thread wins.
fn wait_delivered(producer: &ThreadedProducer<DeliveryTracker>) -> Result<(), KafkaError> {
    let deadline = Instant::now() + TXN_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::RequestTimedOut));
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(())
}
