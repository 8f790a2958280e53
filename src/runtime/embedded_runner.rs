//! Runs a topology over the [`EmbeddedLog`]: one task per input partition, records in
//! offset order, each record's outputs and offset committed together.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::processor::Processor;

use super::{EmbeddedLog, RecordHandler};

/// Processing-time distribution of one run, in microseconds.
pub struct RunStats {
    pub records: u64,
    pub processing_us: Histogram<u64>,
}

pub struct EmbeddedRunner {
    pub log: Arc<EmbeddedLog>,
    pub handler: RecordHandler,
    pub group: String,
    pub input_topic: String,
}

impl EmbeddedRunner {
    /// Processes every partition of the input topic up to its current end.
    pub async fn run_to_end<F>(
        &self,
        make_processor: F,
        now_ms: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> RunStats
    where
        F: Fn() -> Box<dyn Processor>,
    {
        let now_ms = Arc::new(now_ms);
        let stats = Arc::new(Mutex::new(crate::cli::latency_histogram()));
        let mut tasks = Vec::new();
        for partition in 0..self.log.partitions(&self.input_topic) {
            let (log, handler, group, topic) = (
                self.log.clone(),
                self.handler.clone(),
                self.group.clone(),
                self.input_topic.clone(),
            );
            let (stats, now_ms) = (stats.clone(), now_ms.clone());
            let mut processor = make_processor();
            tasks.push(async move {
                let mut local = crate::cli::latency_histogram();
                let end = log.end_offset(&topic, partition);
                let mut offset = log.committed(&group, &topic, partition);
                while offset < end {
                    for record in log.read(&topic, partition, offset, 512) {
                        let started = Instant::now();
                        let decoded = handler.decode(&record).await;
                        let now = now_ms();
                        let outputs =
                            handler.handle(processor.as_mut(), &record, decoded, now, started);
                        local.saturating_record(started.elapsed().as_micros() as u64);
                        log.commit(&group, (&topic, partition), record.offset + 1, outputs, now);
                        offset = record.offset + 1;
                    }
                }
                stats
                    .lock()
                    .expect("stats lock poisoned")
                    .add(&local)
                    .expect("same bounds");
            });
        }
        futures::future::join_all(tasks).await;
        let processing_us = Arc::try_unwrap(stats)
            .map(|m| m.into_inner().expect("stats lock poisoned"))
            .unwrap_or_else(|arc| arc.lock().expect("stats lock poisoned").clone());
        RunStats {
            records: processing_us.len(),
            processing_us,
        }
    }
}
