//! One task per partition of a sub-topology: restore the processor's stores from their
//! changelogs (see [`super::restore`]), then process records in offset order, one at a time, and fire timers on ticks.
//! Between two records a task with stores answers state queries (see [`crate::runtime::queries`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::processor::Processor;
use crate::runtime::queries::Query;
use crate::runtime::{InputRecord, Readiness, RecordHandler, StateQueries};

use super::committer::Committer;
use super::output_size::SizeLimit;
use super::restore::restore;
use super::RuntimeError;

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
    let limit = SizeLimit::of(&kafka);
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
                .map(|restored| (processor, restored))
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        readiness.restoring(-1);
        let (p, restored) = match restored {
            Ok(restored) => restored,
            Err(error) => {
                let _ = failures.send(error).await;
                return;
            }
        };
        let m = handler.metrics();
        m.restored_records.inc_by(restored.records);
        m.restore_seconds
            .observe(restore_started.elapsed().as_secs_f64());
        // States the processor could not read back: dead letters and tombstones, in the
        // task's first transaction (see `restore`).
        if restored.lost() > 0 {
            let outputs = restored.outputs(&handler, crate::clock::now_ms());
            let _gate = committer.enter_async().await;
            if committer.epoch() != epoch {
                return;
            }
            if let Err(error) = send_all(&committer, &outputs).await {
                let _ = failures.send(error).await;
                return;
            }
        }
        p
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
                let _gate = committer.enter_async().await;
                let _panic = AbandonOnPanic(&committer);
                if committer.epoch() != epoch {
                    return; // revoked: the next owner processes what is left
                }
                let now_ms = crate::clock::now_ms();
                let outputs = handler.handle(processor.as_mut(), &record, decoded, now_ms, started);
                let outputs = limit.enforce(outputs, &handler, &record, now_ms);
                send_all(&committer, &outputs).await.map(|()| committer.record_done(&record))
            }
            _ = tick.tick(), if has_timers => {
                let _gate = committer.enter_async().await;
                let _panic = AbandonOnPanic(&committer);
                if committer.epoch() != epoch {
                    return;
                }
                let outputs = handler.tick(processor.as_mut(), partition, crate::clock::now_ms());
                let outputs = limit.drop_oversized(outputs);
                send_all(&committer, &outputs).await
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

/// Sends every output of one record (or one tick). If one cannot be sent, the earlier ones
/// are already in the open transaction: the committer is abandoned, so they are never seen.
async fn send_all(
    committer: &Committer,
    outputs: &[crate::runtime::OutputRecord],
) -> Result<(), RuntimeError> {
    for output in outputs {
        if let Err(error) = committer.send_async(output).await {
            committer.abandon();
            return Err(error);
        }
    }
    Ok(())
}

/// A panic while a record is half-processed leaves part of its outputs in the open
/// transaction. Dropped before the commit gate is released, it abandons the transaction
/// first, so no commit can slip in between.
struct AbandonOnPanic<'a>(&'a Committer);

impl Drop for AbandonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abandon();
        }
    }
}
