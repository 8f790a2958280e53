//! The consumer's rebalance hooks: commit before partitions go, count what comes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Statistics};
use tracing::{info, warn};

use crate::runtime::Readiness;
use crate::telemetry::Metrics;

use super::committer::Committer;

pub struct StreamContext {
    pub committer: Arc<Committer>,
    pub readiness: Arc<Readiness>,
    pub metrics: Metrics,
    /// Set when a commit inside a rebalance failed; the stream loop then restarts.
    pub failed: Arc<AtomicBool>,
}

impl ClientContext for StreamContext {
    /// Every `statistics.interval.ms`: sets `aura_consumer_lag` for each owned partition, the
    /// records between what this instance has consumed and the partition's end (its last stable
    /// offset under read_committed). Offsets are committed in transactions, which librdkafka's
    /// own `consumer_lag` does not see, so the lag is counted from the consumed position.
    fn stats(&self, statistics: Statistics) {
        let lag = &self.metrics.consumer_lag;
        lag.reset();
        for (topic, t) in &statistics.topics {
            for p in t
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.desired)
            {
                let end = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                let consumed = if p.app_offset >= 0 {
                    p.app_offset
                } else {
                    p.committed_offset
                };
                if end >= 0 && consumed >= 0 {
                    lag.with_label_values(&[topic.as_str(), &p.partition.to_string()])
                        .set((end - consumed).max(0));
                }
            }
        }
    }
}

impl ConsumerContext for StreamContext {
    /// Runs before partitions are taken away: commit what was processed, so the next owner
    /// starts right after it, and stop every partition task (the protocol is eager: all
    /// partitions are revoked, then the new assignment is given).
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            info!(
                partitions = partitions.count(),
                "partitions revoked; committing"
            );
            // The commit blocks on the broker; tell tokio so other tasks move elsewhere.
            let result = tokio::task::block_in_place(|| self.committer.commit_and_revoke(consumer));
            if let Err(error) = result {
                warn!(%error, "commit on revocation failed; its records will be processed again by the next owner");
                self.failed.store(true, Ordering::Release);
            }
            self.readiness.set_assigned(0);
            self.metrics.partitions_assigned.set(0);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let n = partitions.count() as i64;
                info!(partitions = n, "partitions assigned");
                // Every task of a new assignment starts with an empty queue. librdkafka keeps a
                // partition's pause across a revoke and a new assignment of it, and the tasks
                // that paused it are gone: without this it would never resume.
                if let Err(error) = consumer.resume(partitions) {
                    warn!(%error, "cannot resume the assigned partitions");
                }
                self.readiness.set_rebalanced();
                self.metrics.rebalances.inc();
                self.metrics.partitions_assigned.set(n);
                self.readiness.set_assigned(n);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => warn!(%error, "rebalance error"),
        }
    }
}
