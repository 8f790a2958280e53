//! One saga task's share of the instance-wide saga gauges.
//!
//! Every partition task of this instance adds to the same gauges, so no task may `set` them.
//! Each publishes the difference between its census now and what it published last, and takes
//! back everything it published when it drops. So a revoked partition's sagas leave the gauges
//! with its task, and are counted again by their next owner once it has restored them.

use prometheus::IntGauge;

use crate::saga::{SagaCensus, SagaStatus};
use crate::telemetry::SagaMetrics;

pub struct GaugeShare {
    by_state: [IntGauge; SagaStatus::ALL.len()],
    active: IntGauge,
    timers_pending: IntGauge,
    published: SagaCensus,
}

impl GaugeShare {
    pub fn new(metrics: &SagaMetrics) -> Self {
        Self {
            by_state: SagaStatus::ALL.map(|s| metrics.by_state.with_label_values(&[s.label()])),
            active: metrics.active.clone(),
            timers_pending: metrics.timers_pending.clone(),
            published: SagaCensus::default(),
        }
    }

    /// Brings this task's share up to `now`; touches only the gauges that changed.
    pub fn publish(&mut self, now: SagaCensus) {
        if now == self.published {
            return;
        }
        let was = self.published;
        for (gauge, status) in self.by_state.iter().zip(SagaStatus::ALL) {
            add(gauge, now.count(status) - was.count(status));
        }
        add(&self.active, now.active() - was.active());
        add(&self.timers_pending, now.timers - was.timers);
        self.published = now;
    }
}

impl Drop for GaugeShare {
    fn drop(&mut self) {
        self.publish(SagaCensus::default());
    }
}

fn add(gauge: &IntGauge, delta: i64) {
    if delta != 0 {
        gauge.add(delta);
    }
}
