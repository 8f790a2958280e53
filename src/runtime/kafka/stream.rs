//! The stream loop of one consumer-group member: consume, dispatch to partition tasks,
//! commit on an interval, and stop cleanly.
//!
//! Partition tasks are supervised: one that panics or fails ends the generation, which
//! aborts the open transaction (never commits part of a record) and restarts from the last
//! committed offsets. A partition paused for a full queue that makes no progress is
//! reported to `/readyz`.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::TopicPartitionList;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::runtime::readiness::STALL_AFTER;
use crate::runtime::{InputRecord, Readiness, RecordHandler};

use super::committer::Committer;
use super::context::StreamContext;
use super::{clients, worker, KafkaSettings, RuntimeError};

/// Records a partition task may have queued before its partition is paused.
const PARTITION_QUEUE: usize = 4096;

/// How a generation of the loop ended.
pub enum Ended {
    /// Shutdown was asked for; everything processed was committed.
    Shutdown,
    /// A commit failed; the caller rebuilds the clients and resumes from committed offsets.
    Restart,
}

struct Partition {
    queue: mpsc::Sender<InputRecord>,
    /// Records that did not fit in the queue, in order; the partition is paused meanwhile,
    /// so one slow partition holds back only itself.
    parked: VecDeque<InputRecord>,
    /// The topic-partitions paused for this task, resumed together once it catches up.
    paused: Vec<(String, i32)>,
    /// The queue's free room when last looked at, and when the task last took a record.
    room: usize,
    progressed: Instant,
}

pub async fn run_generation(
    settings: &KafkaSettings,
    handler: &RecordHandler,
    readiness: &Arc<Readiness>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<Ended, RuntimeError> {
    let kafka = &settings.kafka;
    let metrics = handler.metrics().clone();
    let committer = Arc::new(Committer::new(
        kafka.processing_guarantee,
        |slot| clients::producer(kafka, &settings.instance_id, slot),
        metrics.clone(),
    )?);
    let failed = Arc::new(AtomicBool::new(false));
    let context = StreamContext {
        committer: committer.clone(),
        readiness: readiness.clone(),
        metrics: metrics.clone(),
        failed: failed.clone(),
    };
    let consumer: Arc<StreamConsumer<StreamContext>> = Arc::new(
        clients::stream_consumer(kafka, &settings.instance_id)
            .create_with_context(context)
            .map_err(|e| RuntimeError::Client {
                what: "consumer",
                source: e,
            })?,
    );
    let topics: Vec<&str> = settings
        .subtopologies
        .iter()
        .flat_map(|st| st.topics.iter().map(String::as_str))
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| RuntimeError::Broker {
            what: "subscribe",
            source: e,
        })?;
    info!(topics = ?topics, group = %kafka.group_id, guarantee = %kafka.processing_guarantee, "stream loop started");
    readiness.set_running(true);

    let (failures_tx, mut failures) = mpsc::channel(8);
    // Every partition task, so a panic is seen (a dropped handle would hide it).
    let mut tasks: JoinSet<(usize, i32, Option<String>)> = JoinSet::new();
    // One task per (sub-topology, partition): co-partitioned topics share their task's state.
    let mut partitions: HashMap<(usize, i32), Partition> = HashMap::new();
    let mut epoch = committer.epoch();
    let mut assignment_checked = Instant::now();
    let spawn_task = |tasks: &mut JoinSet<_>, subtopology: usize, partition: i32| {
        let (tx, rx) = mpsc::channel(PARTITION_QUEUE);
        let task = worker::run(worker::Task {
            partition,
            records: rx,
            handler: handler.clone(),
            committer: committer.clone(),
            processor: (settings.subtopologies[subtopology].make_processor)(partition),
            failures: failures_tx.clone(),
            kafka: kafka.clone(),
            readiness: readiness.clone(),
            queries: settings.queries.clone(),
        });
        tasks.spawn(async move {
            let panicked = AssertUnwindSafe(task).catch_unwind().await.err();
            (subtopology, partition, panicked.map(panic_message))
        });
        Partition {
            queue: tx,
            parked: VecDeque::new(),
            paused: Vec::new(),
            room: PARTITION_QUEUE,
            progressed: Instant::now(),
        }
    };
    let mut commit_tick = tokio::time::interval(Duration::from_millis(kafka.commit_interval_ms));
    commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let ended = loop {
        if committer.epoch() != epoch {
            // Revoked: those tasks have stopped.
            partitions.clear();
            epoch = committer.epoch();
        }
        tokio::select! {
            _ = shutdown.changed() => break Ended::Shutdown,
            Some(error) = failures.recv() => {
                warn!(%error, "partition task failed");
                readiness.task_died(error.to_string());
                break Ended::Restart;
            }
            Some(joined) = tasks.join_next() => {
                if let Ok((subtopology, partition, Some(message))) = joined {
                    let error = RuntimeError::TaskPanicked { subtopology, partition, message };
                    tracing::error!(%error, "partition task panicked; its transaction is aborted and the loop restarts");
                    readiness.task_died(error.to_string());
                    break Ended::Restart;
                }
            }
            _ = commit_tick.tick() => {
                let (c, k) = (committer.clone(), consumer.clone());
                let commit_started = Instant::now();
                let committed = tokio::task::spawn_blocking(move || c.commit(&*k)).await;
                // The next commit is due one interval after this one *ended*, and never sooner
                // than it took: records are not consumed during a commit, so ticking from its
                // start let a slow commit (many output partitions, a busy broker) be followed
                // at once by the next, with a handful of records between. Under load the commits
                // ate the loop: at commit.interval.ms = 5 the saga path fell to ~700 records/s.
                let interval = Duration::from_millis(kafka.commit_interval_ms);
                commit_tick.reset_at((Instant::now() + interval.max(commit_started.elapsed())).into());
                match committed {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => {
                        let (c, k) = (committer.clone(), consumer.clone());
                        let rewound = tokio::task::spawn_blocking(move || c.rewind() && seek_to_committed(&k))
                            .await
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
                        if !rewound {
                            warn!(%error, "commit failed");
                            break Ended::Restart;
                        }
                        // The tasks of the aborted transaction are gone; new ones restore.
                        warn!(%error, "commit failed and was aborted; processing again from the committed offsets, without leaving the group");
                        readiness.restarted(format!("commit aborted: {error}"));
                        partitions.clear();
                        epoch = committer.epoch();
                    }
                    Err(panic) => std::panic::resume_unwind(panic.into_panic()),
                }
                resume_drained(&consumer, &mut partitions);
                readiness.set_stalled(stalled(&mut partitions));
                // Tasks start at assignment, not at their first record, so their stores are
                // restored and their timers fire even on a quiet partition.
                if assignment_checked.elapsed() > Duration::from_millis(100) {
                    assignment_checked = Instant::now();
                    if let Ok(assigned) = consumer.assignment() {
                        for e in assigned.elements() {
                            if let Some(st) = settings.subtopology_of(e.topic()) {
                                partitions.entry((st, e.partition())).or_insert_with(|| spawn_task(&mut tasks, st, e.partition()));
                            }
                        }
                    }
                }
            }
            message = consumer.recv() => {
                match message {
                    Ok(m) => {
                        if committer.epoch() != epoch {
                            // Revoked inside this very recv: never hand a record of the new
                            // assignment to a task of the old one, which would drop it.
                            partitions.clear();
                            epoch = committer.epoch();
                        }
                        let record = to_record(&m);
                        let Some(st) = settings.subtopology_of(&record.topic) else { continue };
                        let partition = partitions.entry((st, record.partition)).or_insert_with(|| spawn_task(&mut tasks, st, record.partition));
                        dispatch(&consumer, partition, record);
                    }
                    Err(KafkaError::MessageConsumption(code)) => {
                        // e.g. a subscribed topic that does not exist yet: it is picked up when created.
                        warn!(error = %code, "consume error");
                    }
                    Err(error) => { warn!(%error, "consumer failed"); break Ended::Restart; }
                }
            }
        }
        if failed.load(Ordering::Acquire) {
            break Ended::Restart;
        }
    };

    readiness.set_running(false);
    if let Ended::Restart = ended {
        // Whatever the open transaction holds may be part of a record: abort it, and stop
        // the tasks, before closing the consumer runs the revoke callback.
        committer.abandon();
        let c = committer.clone();
        if let Err(panic) = tokio::task::spawn_blocking(move || c.abort_and_revoke()).await {
            std::panic::resume_unwind(panic.into_panic());
        }
    }
    drop(partitions); // closes the queues: tasks finish their current record and stop
    if let Ended::Shutdown = ended {
        let (c, k) = (committer.clone(), consumer.clone());
        let result = tokio::task::spawn_blocking(move || c.commit_and_revoke(&*k)).await;
        match result {
            Ok(Ok(_)) => info!("final commit done"),
            Ok(Err(error)) => {
                warn!(%error, "final commit failed; uncommitted records will be processed again")
            }
            Err(panic) => std::panic::resume_unwind(panic.into_panic()),
        }
    }
    consumer.unsubscribe();
    Ok(ended)
}

fn dispatch(
    consumer: &StreamConsumer<StreamContext>,
    partition: &mut Partition,
    record: InputRecord,
) {
    let source = (record.topic.clone(), record.partition);
    if partition.parked.is_empty() {
        let Err(mpsc::error::TrySendError::Full(record)) = partition.queue.try_send(record) else {
            return;
        };
        partition.parked.push_back(record);
    } else {
        partition.parked.push_back(record);
    }
    if !partition.paused.contains(&source) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&source.0, source.1);
        if let Err(error) = consumer.pause(&tpl) {
            warn!(%error, topic = %source.0, partition = source.1, "pause failed");
        }
        partition.paused.push(source);
    }
}

/// Moves parked records into their queues and resumes partitions that caught up.
fn resume_drained(
    consumer: &StreamConsumer<StreamContext>,
    partitions: &mut HashMap<(usize, i32), Partition>,
) {
    for partition in partitions.values_mut() {
        while let Some(record) = partition.parked.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(record)) = partition.queue.try_send(record) {
                partition.parked.push_front(record);
                break;
            }
        }
        if partition.parked.is_empty() && !partition.paused.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (topic, p) in partition.paused.drain(..) {
                tpl.add_partition(&topic, p);
            }
            let _ = consumer.resume(&tpl);
        }
    }
}

/// Moves every assigned partition back to its committed offset (the beginning where the
/// group has none) and resumes it. False if the broker did not answer: rebuild instead.
fn seek_to_committed(consumer: &StreamConsumer<StreamContext>) -> bool {
    let seek = || -> Result<(), KafkaError> {
        let committed = consumer.committed(Duration::from_secs(10))?;
        let mut to = TopicPartitionList::new();
        for e in committed.elements() {
            let offset = match e.offset() {
                rdkafka::Offset::Offset(o) => rdkafka::Offset::Offset(o),
                _ => rdkafka::Offset::Beginning,
            };
            to.add_partition_offset(e.topic(), e.partition(), offset)?;
        }
        for e in consumer
            .seek_partitions(to, Duration::from_secs(10))?
            .elements()
        {
            e.error()?;
        }
        consumer.resume(&consumer.assignment()?)
    };
    seek()
        .inspect_err(|error| warn!(%error, "cannot seek back to the committed offsets"))
        .is_ok()
}

/// Partitions paused with a task that has taken nothing for [`STALL_AFTER`].
fn stalled(partitions: &mut HashMap<(usize, i32), Partition>) -> i64 {
    let mut stalled = 0;
    for p in partitions.values_mut() {
        let room = p.queue.capacity();
        if room != p.room || p.paused.is_empty() {
            p.room = room;
            p.progressed = Instant::now();
        } else if p.progressed.elapsed() > STALL_AFTER {
            stalled += 1;
        }
    }
    stalled
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// A consumed message as the runtime handles it: coordinates, key, value and headers, copied.
pub(super) fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> InputRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    InputRecord {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        timestamp_ms: m.timestamp().to_millis(),
        headers,
    }
}
