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
//! its outputs. The gate is tokio's lock: a task waiting for a commit (which may wait on the
//! broker for seconds) yields its worker thread instead of blocking it.
//!
//! **A record that fails half-way.** When a task fails after some of a record's outputs went
//! into the open transaction, the committer is [`abandon`](Committer::abandon)ed: no later
//! commit, including the one on revocation, may make those outputs visible. The transaction
//! is aborted instead and the record is processed again from the last committed offset.
//!
//! **Timers are fenced too.** A commit that carries only timer outputs still sends offsets
//! (the last committed ones, again) with the consumer's group metadata, so a zombie whose
//! partitions moved is refused by the group coordinator before its timer outputs commit. And
//! a member that librdkafka knows has lost its assignment (a session or poll timeout) never
//! commits: the coordinator would accept a transactional commit of a member that has left.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{RwLock, RwLockReadGuard};
use tracing::{debug, warn};

use crate::config::ProcessingGuarantee;
use crate::runtime::{InputRecord, OutputRecord};
use crate::telemetry::Metrics;

use super::RuntimeError;

const TXN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a commit whose error librdkafka calls retriable (a timeout, a coordinator
/// moving) is tried again before the generation gives up.
const COMMIT_RETRIES: u32 = 3;

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
    /// Set when a task failed inside a record: the open transaction holds part of a record
    /// and must never commit.
    abandoned: AtomicBool,
    /// Set when a failed commit was aborted and a new transaction begun: the producers are
    /// fine, and the runtime may rewind instead of rebuilding everything.
    reusable: AtomicBool,
    /// The input offsets of the last successful commits, re-sent by a commit that has only
    /// timer outputs so that it is fenced by the group generation like any other.
    committed: Mutex<HashMap<(String, i32), i64>>,
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
            abandoned: AtomicBool::new(false),
            reusable: AtomicBool::new(false),
            committed: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    fn producer(&self) -> &ThreadedProducer<DeliveryTracker> {
        &self.producers[self.active.load(Ordering::Acquire)]
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Entered by a partition task for the span of one record; waits (without blocking the
    /// thread) while a commit runs.
    pub async fn enter_async(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read().await
    }

    /// `enter_async` for callers on a blocking thread (never inside async code).
    pub fn enter(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.blocking_read()
    }

    /// Marks the open transaction as holding part of a failed record: it is aborted, never
    /// committed, and every later commit of this committer fails. Idempotent.
    pub fn abandon(&self) {
        if !self.abandoned.swap(true, Ordering::AcqRel) {
            warn!("the open transaction will be aborted, not committed; processing resumes from the last committed offsets");
        }
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Hands one output to the producer, waiting (asynchronously) while its queue is full,
    /// which is back-pressure, not failure.
    pub async fn send_async(&self, output: &OutputRecord) -> Result<(), RuntimeError> {
        loop {
            match self.try_send(output)? {
                true => return Ok(()),
                false => tokio::time::sleep(Duration::from_millis(1)).await,
            }
        }
    }

    /// `send_async` for callers on a blocking thread (never inside async code).
    pub fn send(&self, output: &OutputRecord) -> Result<(), RuntimeError> {
        loop {
            match self.try_send(output)? {
                true => return Ok(()),
                false => std::thread::sleep(Duration::from_millis(1)),
            }
        }
    }

    /// Sends `output`; `Ok(false)` when the producer queue is full.
    fn try_send(&self, output: &OutputRecord) -> Result<bool, RuntimeError> {
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
                Ok(true)
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(false),
            Err((e, _)) => Err(RuntimeError::Broker {
                what: "produce",
                source: e,
            }),
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
        let _exclusive = self.gate.blocking_write();
        self.commit_locked(consumer)
    }

    /// Commits, then stops every partition task: their partitions are being revoked.
    pub fn commit_and_revoke<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<bool, RuntimeError> {
        let _exclusive = self.gate.blocking_write();
        let result = if self.is_abandoned() {
            // A task failed inside a record: its partial outputs must not commit with the
            // partitions' last records. The next owner starts at the last committed offsets.
            self.abort_open();
            Ok(false)
        } else {
            self.commit_locked(consumer)
        };
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut p = self.progress.lock().expect("progress lock poisoned");
        *p = Progress::default();
        self.committed
            .lock()
            .expect("committed lock poisoned")
            .clear();
        result
    }

    /// After a commit failed with an abortable error (a timeout, a broker restart, a failed
    /// delivery) whose transaction was aborted and a new one begun: forgets what was processed
    /// and stops every partition task, so the runtime can seek back to the committed offsets
    /// and go on without leaving the group. False when the producers cannot go on (fenced,
    /// fatal, or abandoned): the generation must be rebuilt. Blocking, like `commit`.
    pub fn rewind(&self) -> bool {
        let _exclusive = self.gate.blocking_write();
        if !self.reusable.swap(false, Ordering::AcqRel) || self.is_abandoned() {
            return false;
        }
        *self.progress.lock().expect("progress lock poisoned") = Progress::default();
        self.committed
            .lock()
            .expect("committed lock poisoned")
            .clear();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Aborts the open transaction, if any, and stops every partition task: for a failed
    /// generation, whose partial outputs must never be seen. Blocking, like `commit`.
    pub fn abort_and_revoke(&self) {
        let _exclusive = self.gate.blocking_write();
        self.abort_open();
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.committed
            .lock()
            .expect("committed lock poisoned")
            .clear();
    }

    /// Throws away what was processed since the last commit and, under exactly-once, aborts
    /// its transaction (the at-least-once outputs are already out: they are duplicates to be).
    fn abort_open(&self) {
        let pending = std::mem::take(&mut *self.progress.lock().expect("progress lock poisoned"));
        if self.guarantee == ProcessingGuarantee::ExactlyOnceV2
            && (pending.outputs_sent || !pending.next_offsets.is_empty())
        {
            let producer = self.producer();
            match producer
                .abort_transaction(TXN_TIMEOUT)
                .and_then(|()| producer.begin_transaction())
            {
                Ok(()) => {
                    self.metrics
                        .transactions
                        .with_label_values(&["aborted"])
                        .inc();
                }
                Err(error) => {
                    warn!(%error, "abort failed; the transaction times out on the broker")
                }
            }
        }
    }

    fn commit_locked<C: ConsumerContext>(
        &self,
        consumer: &impl Consumer<C>,
    ) -> Result<bool, RuntimeError> {
        if self.is_abandoned() {
            self.abort_open();
            return Err(RuntimeError::Abandoned);
        }
        // librdkafka knows the group dropped this member (a session or poll timeout, as
        // after a freeze): its partitions are someone else's. The coordinator would accept a
        // transactional commit of a member that already left, so refuse it here.
        if consumer.assignment_lost() {
            self.abort_open();
            return Err(RuntimeError::AssignmentLost);
        }
        let pending = std::mem::take(&mut *self.progress.lock().expect("progress lock poisoned"));
        if pending.next_offsets.is_empty() && !pending.outputs_sent {
            return Ok(false);
        }
        let to_send = {
            let mut committed = self.committed.lock().expect("committed lock poisoned");
            if pending.next_offsets.is_empty() {
                // Timer outputs only: the last offsets again, for the generation check.
                committed.clone()
            } else {
                committed.extend(pending.next_offsets.clone());
                pending.next_offsets.clone()
            }
        };
        let mut offsets = TopicPartitionList::with_capacity(to_send.len());
        for ((topic, partition), next) in &to_send {
            offsets
                .add_partition_offset(topic, *partition, Offset::Offset(*next))
                .expect("a fresh offset is valid");
        }
        if offsets.count() == 0 && self.guarantee == ProcessingGuarantee::ExactlyOnceV2 {
            // Nothing committed yet in this generation: ask the group for its offsets.
            if let Ok(found) = consumer.committed(TXN_TIMEOUT) {
                for e in found.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        let _ = offsets.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(o),
                        );
                    }
                }
            }
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
        let phase = |name: &str, started: Instant| {
            self.metrics
                .commit_phase_seconds
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
        };
        let attempt = || -> Result<(), KafkaError> {
            let started = Instant::now();
            wait_delivered(producer)?;
            phase("flush", started);
            if has_offsets {
                let started = Instant::now();
                retrying(|| producer.send_offsets_to_transaction(offsets, &group, TXN_TIMEOUT))?;
                phase("offsets", started);
            }
            let started = Instant::now();
            retrying(|| producer.commit_transaction(TXN_TIMEOUT))?;
            phase("end", started);
            producer.begin_transaction()
        };
        attempt().map_err(|e| {
            // A fenced or fatal producer cannot abort, and is rebuilt with the generation.
            // One that aborts and begins again can go on: see `rewind`.
            let reusable = producer
                .abort_transaction(TXN_TIMEOUT)
                .and_then(|()| producer.begin_transaction())
                .is_ok();
            self.reusable.store(reusable, Ordering::Release);
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

/// Runs a transactional call again while librdkafka says its error is retriable (a timeout
/// or a coordinator moving): such an error leaves the transaction as it was.
fn retrying(mut call: impl FnMut() -> Result<(), KafkaError>) -> Result<(), KafkaError> {
    let mut tries = 0;
    loop {
        match call() {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && tries < COMMIT_RETRIES => {
                tries += 1;
                warn!(error = %e, tries, "transactional call failed; retrying");
            }
            other => return other,
        }
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
