//! The saga processor: one partition's sagas, keyed by saga id. Routed incidents start or
//! join sagas, agent results move them on, and due timers (timeouts, retries, expiry) fire on
//! ticks. Every changed saga is written through to the `sagas` store's changelog in the same
//! transaction as the records it caused.
//!
//! It also keeps this task's share of the saga gauges ([`GaugeShare`]) and counts each input's
//! outcome, and answers state queries for one saga.

use std::sync::Arc;

use prometheus::IntCounterVec;

use crate::model::AgentCommand;
use crate::saga::{Effects, SagaEngine, SagaOutput, SagaStart, SagaState, SagaStore, StateChange};
use crate::telemetry::SagaMetrics;

use super::saga_gauges::GaugeShare;
use super::{Event, Output, ProcessError, Processor};

/// The store's name, and so its changelog topic: `<group.id>-sagas-changelog`.
pub const SAGA_STORE: &str = "sagas";

pub struct SagaProcessor {
    engine: Arc<SagaEngine>,
    store: SagaStore,
    gauges: GaugeShare,
    inputs: IntCounterVec,
}

impl SagaProcessor {
    pub fn new(engine: Arc<SagaEngine>, metrics: &SagaMetrics) -> Self {
        Self {
            engine,
            store: SagaStore::new(),
            gauges: GaugeShare::new(metrics),
            inputs: metrics.inputs.clone(),
        }
    }

    pub fn store(&self) -> &SagaStore {
        &self.store
    }

    /// Counts what an input (`trigger` or `result`) did.
    fn count(&self, input: &str, effects: &Effects) {
        let outcome = effects.ignored.as_ref().map_or("applied", |i| i.label());
        self.inputs.with_label_values(&[input, outcome]).inc();
    }

    /// Appends the effects' records, then the saga's new state for the changelog.
    fn emit(&self, saga_id: &str, effects: Effects, out: &mut Vec<Output>) {
        for output in effects.outputs {
            out.push(match output {
                SagaOutput::Command(c) => Output::Command(c),
                SagaOutput::Event(e) => Output::SagaEvent(e),
                SagaOutput::Compensation(c) => Output::Compensation(c),
                SagaOutput::Escalation(e) => Output::Escalation(e),
            });
        }
        let value = match effects.state {
            StateChange::Unchanged => return,
            StateChange::Put => self
                .store
                .get(saga_id)
                .map(|s| serde_json::to_vec(s).expect("saga state serializes")),
            StateChange::Delete => None,
        };
        out.push(Output::State {
            store: SAGA_STORE,
            key: saga_id.to_string(),
            value,
        });
    }
}

/// The saga a routed incident starts: the route's choices travel in the trigger.
fn start_of(trigger: AgentCommand) -> SagaStart {
    SagaStart {
        saga_id: trigger.saga_id,
        correlation_id: trigger.correlation_id,
        workflow: trigger.workflow,
        anomaly_ids: trigger.anomaly_ids,
        pattern_id: trigger.pattern_id,
        layer: trigger.layer,
        coordination: trigger.coordination,
        urgency: trigger.urgency,
        complexity: trigger.complexity,
        explanation: trigger.explanation,
        attributes: trigger.attributes,
        agent_overrides: Default::default(),
    }
}

impl Processor for SagaProcessor {
    fn name(&self) -> &'static str {
        "saga"
    }

    fn process(
        &mut self,
        event: Event,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        match event {
            Event::SagaTrigger(trigger) => {
                let saga_id = trigger.saga_id.clone();
                let effects = self
                    .store
                    .start_or_join(&self.engine, start_of(trigger), now_ms)
                    .map_err(|e| ProcessError::Failed(e.to_string()))?;
                self.count("trigger", &effects);
                self.emit(&saga_id, effects, out);
            }
            Event::AgentResult(result) => {
                let effects = self.store.on_result(&self.engine, &result, now_ms);
                self.count("result", &effects);
                self.emit(&result.saga_id, effects, out);
            }
            Event::Anomaly(a) => {
                return Err(ProcessError::Failed(format!(
                    "anomaly {} reached the saga processor",
                    a.anomaly_id
                )))
            }
        }
        self.gauges.publish(self.store.census());
        Ok(())
    }

    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        for (saga_id, effects) in self.store.fire_due(&self.engine, now_ms) {
            self.emit(&saga_id, effects, out);
        }
        self.gauges.publish(self.store.census());
    }

    fn stores(&self) -> &'static [&'static str] {
        &[SAGA_STORE]
    }

    fn restore(&mut self, store: &str, key: &str, value: Option<&[u8]>) {
        if store != SAGA_STORE {
            return;
        }
        match value.and_then(|v| serde_json::from_slice::<SagaState>(v).ok()) {
            Some(state) => self.store.insert(state),
            None => {
                self.store.remove(key);
            }
        }
        self.gauges.publish(self.store.census());
    }

    fn query(&self, store: &str, key: &str) -> Option<serde_json::Value> {
        if store != SAGA_STORE {
            return None;
        }
        let state = self.store.get(key)?;
        Some(serde_json::to_value(state).expect("saga state serializes"))
    }
}
