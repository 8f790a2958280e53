//! Runs the service's topology over the [`EmbeddedLog`], as Kafka Streams' `TopologyTestDriver`
//! runs a topology without a broker: the same processors `aura run` builds (one task per
//! partition, each restored from its changelogs in the log), records in offset order, timers
//! fired by [`EmbeddedRunner::tick`] at a time the caller chooses, so virtual time works.
//!
//! Delivery rule: each record's outputs (state writes to the changelog topics included) and
//! its next offset are applied to the log together ([`EmbeddedLog::commit`]).

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::processor::Processor;
use crate::topology::Topology;

use super::kafka::restore::Restored;
use super::kafka::MakeProcessor;
use super::{EmbeddedLog, RecordHandler};

/// Records a partition reads per round, so one busy partition does not hold up the others.
const BATCH: usize = 512;

pub struct EmbeddedRunner {
    log: Arc<EmbeddedLog>,
    handler: RecordHandler,
    group: String,
    /// The stream inputs, read by every task at its own partition.
    inputs: Vec<String>,
    tasks: Vec<Box<dyn Processor>>,
    /// Processing time of each record, in microseconds.
    pub processing_us: Histogram<u64>,
}

impl EmbeddedRunner {
    /// Creates the topology's topics with `partitions` partitions each, then one task per
    /// partition, restored from whatever its changelogs in `log` hold.
    pub fn new(
        log: Arc<EmbeddedLog>,
        handler: RecordHandler,
        group: &str,
        make_processor: &MakeProcessor,
        partitions: i32,
    ) -> Self {
        let topology: &Topology = handler.topology();
        let inputs: Vec<String> = topology
            .inputs
            .iter()
            .filter(|i| i.reading == crate::topology::Reading::Stream)
            .map(|i| i.topic.clone())
            .collect();
        for topic in inputs.iter().chain(&topology.changelogs()) {
            log.create_topic(topic, partitions);
        }
        for o in &topology.outputs {
            log.create_topic(&o.topic, partitions);
        }
        let mut tasks: Vec<Box<dyn Processor>> = (0..partitions).map(make_processor).collect();
        for (partition, task) in tasks.iter_mut().enumerate() {
            let mut restored = Restored::default();
            for store in task.stores() {
                let changelog = topology.internal.changelog(store);
                let end = log.end_offset(&changelog, partition as i32);
                for record in log.read(&changelog, partition as i32, 0, end as usize) {
                    restored.apply(task.as_mut(), store, record);
                }
            }
            // As `aura run` does: each state it could not read back is dead-lettered, then
            // deleted from its changelog.
            if restored.lost() > 0 {
                let now_ms = crate::clock::now_ms();
                log.append_all(restored.outputs(&handler, now_ms), now_ms);
            }
        }
        Self {
            log,
            handler,
            group: group.to_string(),
            inputs,
            tasks,
            processing_us: crate::telemetry::latency_histogram(),
        }
    }

    pub fn log(&self) -> &Arc<EmbeddedLog> {
        &self.log
    }

    /// Processes every input record up to the log's end, again and again until no task's
    /// outputs feed another record (a re-keyed anomaly, say); returns the records processed.
    pub async fn run_until_idle(&mut self, now_ms: i64) -> u64 {
        let mut total = 0;
        loop {
            let mut round = 0;
            for (partition, task) in self.tasks.iter_mut().enumerate() {
                let partition = partition as i32;
                for topic in &self.inputs {
                    let from = self.log.committed(&self.group, topic, partition);
                    for record in self.log.read(topic, partition, from, BATCH) {
                        let started = Instant::now();
                        let decoded = self.handler.decode(&record).await;
                        let outputs =
                            self.handler
                                .handle(task.as_mut(), &record, decoded, now_ms, started);
                        self.log.commit(
                            &self.group,
                            (topic, partition),
                            record.offset + 1,
                            outputs,
                            now_ms,
                        );
                        self.processing_us
                            .saturating_record(started.elapsed().as_micros() as u64);
                        round += 1;
                    }
                }
            }
            if round == 0 {
                return total;
            }
            total += round;
        }
    }

    /// Fires every task's due timers at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        for (partition, task) in self.tasks.iter_mut().enumerate() {
            let outputs = self.handler.tick(task.as_mut(), partition as i32, now_ms);
            self.log.append_all(outputs, now_ms);
        }
    }
}
