//! The saga processor: one partition's sagas, keyed by saga id. Routed incidents start or
//! join sagas ([`SagaProcessor::on_incident`], called by [`super::IncidentTask`] in the same
//! task and transaction), agent results and votes (`agent.votes`, counted by consensus steps)
//! move them on, and due timers (timeouts, retries, expiry) fire on ticks. Every changed saga is written through to the `sagas` store's changelog in the same
//! transaction as the records it caused.
//!
//! It also keeps this task's share of the saga gauges ([`GaugeShare`]) and counts each input's
//! outcome, and answers state queries for one saga.

use std::sync::Arc;

use prometheus::IntCounterVec;

use std::collections::BTreeMap;

use crate::auth::AnswerGate;
use crate::model::{AgentCommand, AgentType, AgentVote};
use crate::saga::{Effects, SagaEngine, SagaOutput, SagaStart, SagaStore, StateChange};
use crate::telemetry::SagaMetrics;

use super::saga_gauges::GaugeShare;
use super::{Event, Output, ProcessError, Processor, VoteRefusal};

/// The store's name, and so its changelog topic: `<group.id>-sagas-changelog`.
pub const SAGA_STORE: &str = "sagas";

pub struct SagaProcessor {
    engine: Arc<SagaEngine>,
    store: SagaStore,
    gauges: GaugeShare,
    inputs: IntCounterVec,
    /// With agent keys: answers are verified on entry, commands signed on exit (`src/auth/`).
    gate: Option<AnswerGate>,
}

impl SagaProcessor {
    pub fn new(engine: Arc<SagaEngine>, metrics: &SagaMetrics) -> Self {
        Self {
            engine,
            store: SagaStore::new(),
            gauges: GaugeShare::new(metrics),
            inputs: metrics.inputs.clone(),
            gate: None,
        }
    }

    /// Requires signed answers and signs commands with `gate`'s keyring.
    pub fn with_gate(mut self, gate: Option<AnswerGate>) -> Self {
        self.gate = gate;
        self
    }

    /// The saga's incarnation: its start time, which a reused saga id never repeats.
    fn incarnation(&self, saga_id: &str) -> Option<i64> {
        self.store.get(saga_id).map(|s| s.started_at)
    }

    pub fn store(&self) -> &SagaStore {
        &self.store
    }

    /// Counts `vote` in its saga. With agent auth it must be signed for the saga's incarnation,
    /// and a signed vote the saga ignores is refused with the auth reason; without, a vote no
    /// ballot asked for, or for no option, is refused ([`VoteRefusal`]). Refused votes become
    /// dead letters and leave the saga as it was.
    fn on_vote(
        &mut self,
        vote: &AgentVote,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        if let Some(gate) = &self.gate {
            gate.admit_vote(vote, self.incarnation(&vote.saga_id))?;
        }
        let effects = self.store.on_vote(&self.engine, vote, now_ms);
        self.count("vote", &effects);
        if let Some(gate) = &self.gate {
            gate.judge_vote(vote, effects.ignored)?;
        }
        if let Some(refusal) = VoteRefusal::of(vote, effects.ignored) {
            return Err(refusal.into());
        }
        self.emit(&vote.saga_id, effects, out);
        Ok(())
    }

    /// Counts what an input (`trigger`, `result` or `vote`) did.
    fn count(&self, input: &str, effects: &Effects) {
        let outcome = effects.ignored.as_ref().map_or("applied", |i| i.label());
        self.inputs.with_label_values(&[input, outcome]).inc();
    }

    /// Appends the effects' records, then the saga's new state for the changelog.
    fn emit(&self, saga_id: &str, mut effects: Effects, out: &mut Vec<Output>) {
        if let Some(gate) = &self.gate {
            // Only with a gate: finding the incarnation decodes the saga.
            if let Some(incarnation) = self.incarnation(saga_id) {
                gate.sign_outputs(&mut effects.outputs, incarnation)
                    .expect("the keyring has an active key for every agent type (checked at load)");
            }
        }
        for output in effects.outputs {
            out.push(match output {
                SagaOutput::Command(c) => Output::Command(c),
                SagaOutput::Event(e) => Output::SagaEvent(e),
                SagaOutput::Compensation(c) => Output::Compensation(c),
                SagaOutput::Escalation(e) => Output::Escalation(e),
                SagaOutput::Cancel(c) => Output::Compensation(c),
                SagaOutput::Decision(d) => Output::Decision(d),
            });
        }
        let value = match effects.state {
            StateChange::Unchanged => return,
            StateChange::Put => self.store.record(saga_id).map(<[u8]>::to_vec),
            StateChange::Delete => None,
        };
        out.push(Output::State {
            store: SAGA_STORE,
            key: saga_id.to_string(),
            value,
        });
    }
}

impl SagaProcessor {
    /// Starts the incident's saga, or joins its anomaly to the running one. `incident` is the
    /// routed command of the incident's newest anomaly, with the incident id as `saga_id`.
    pub fn on_incident(
        &mut self,
        incident: AgentCommand,
        agent_overrides: BTreeMap<String, AgentType>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        let saga_id = incident.saga_id.clone();
        let mut start = start_of(incident);
        start.agent_overrides = agent_overrides;
        let _span = crate::stage_span!("saga transition", trigger = "incident", saga_id = %saga_id)
            .entered();
        let new = self.store.record(&saga_id).is_none();
        let effects = self
            .store
            .start_or_join(&self.engine, start, now_ms)
            .map_err(|e| ProcessError::Failed(e.to_string()))?;
        if new {
            // The saga keeps the trace that started it, for its timer-driven outputs.
            if let Some(trace) = crate::tracing_setup::context::current_input_trace() {
                self.store.set_trace(&saga_id, trace);
            }
        }
        self.count("trigger", &effects);
        self.emit(&saga_id, effects, out);
        self.gauges.publish(self.store.census());
        Ok(())
    }
}

/// The saga a routed incident starts: the route's choices travel in the command; the agent
/// types routing reassigned are set by the caller.
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
            Event::AgentResult(result) => {
                let _span = crate::stage_span!("saga transition", trigger = "result",
                    saga_id = %result.saga_id, status = ?result.status)
                .entered();
                if let Some(gate) = &self.gate {
                    gate.admit(&result, self.incarnation(&result.saga_id))?;
                }
                let effects = self.store.on_result(&self.engine, &result, now_ms);
                self.count("result", &effects);
                if let Some(gate) = &self.gate {
                    gate.judge(&result, effects.ignored)?;
                }
                self.emit(&result.saga_id, effects, out);
            }
            Event::AgentVote(vote) => {
                let _span = crate::stage_span!("saga transition", trigger = "vote",
                    saga_id = %vote.saga_id, choice = %vote.choice)
                .entered();
                self.on_vote(&vote, now_ms, out)?;
            }
            Event::Anomaly(a) => {
                return Err(ProcessError::Failed(format!(
                    "anomaly {} reached the saga processor",
                    a.anomaly_id
                )))
            }
            Event::Feedback(f) => {
                return Err(ProcessError::Failed(format!(
                    "feedback on {} reached the saga processor",
                    f.anomaly_id
                )))
            }
        }
        self.gauges.publish(self.store.census());
        Ok(())
    }

    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        for (saga_id, effects) in self.store.fire_due(&self.engine, now_ms) {
            // Timer-driven outputs continue the saga's trace, not a new one (an empty marker
            // when the saga has none, so they do not inherit the previous saga's).
            if !effects.outputs.is_empty() {
                let trace = self.store.trace_of(&saga_id);
                let span = crate::stage_span!("saga transition", trigger = "timer",
                    saga_id = %saga_id);
                if let Some(trace) = &trace {
                    crate::tracing_setup::context::set_parent(&span, trace.as_bytes());
                }
                let marker = crate::tracing_setup::context::of_span(&span).or(trace);
                out.push(Output::Trace(marker.unwrap_or_default()));
            }
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
        // A record that is not a saga state cannot be run; like a tombstone, it drops the key.
        if value.is_none_or(|v| self.store.insert_record(v).is_err()) {
            self.store.remove(key);
        }
        self.gauges.publish(self.store.census());
    }

    fn query(&self, store: &str, key: &str) -> Option<serde_json::Value> {
        if store != SAGA_STORE {
            return None;
        }
        let state = self.store.get(key)?;
        Some(crate::saga::saga_view(&state))
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{AgentType, Coordination, Layer};
    use crate::saga::{SagaConfig, Workflows};
    use crate::telemetry::Metrics;

    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn engine() -> Arc<SagaEngine> {
        let workflows = Arc::new(Workflows::builtin().unwrap());
        Arc::new(SagaEngine::new(workflows, SagaConfig::default()))
    }

    fn trigger(saga_id: &str) -> AgentCommand {
        AgentCommand {
            command_id: format!("{saga_id}/route"),
            saga_id: saga_id.into(),
            correlation_id: "checkout".into(),
            anomaly_ids: vec![format!("{saga_id}-an-1")],
            workflow: "triage".into(),
            step: String::new(),
            agent_type: AgentType::Analyst,
            action: String::new(),
            layer: Layer::Operational,
            coordination: Coordination::Pipeline,
            pattern_id: None,
            urgency: 0.5,
            complexity: 0.2,
            attempt: 1,
            deadline: T0 + 60_000,
            explanation: "test".into(),
            attributes: Default::default(),
            issued_at: T0,
            partition_key: "checkout".into(),
            agent_id: None,
            proof: None,
        }
    }

    fn gauges(m: &Metrics) -> (i64, i64, i64, i64) {
        let s = &m.sagas;
        (
            s.by_state.with_label_values(&["running"]).get(),
            s.by_state.with_label_values(&["completed"]).get(),
            s.active.get(),
            s.timers_pending.get(),
        )
    }

    #[test]
    fn a_saga_keeps_the_trace_that_started_it_and_its_timer_outputs_continue_it() {
        let m = Metrics::new();
        let mut p = SagaProcessor::new(engine(), &m.sagas);
        let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut out = Vec::new();
        crate::tracing_setup::context::with_input_trace(Some(trace.into()), || {
            p.on_incident(trigger("a"), BTreeMap::new(), T0, &mut out)
        })
        .unwrap();
        assert_eq!(p.store().get("a").unwrap().trace.as_deref(), Some(trace));
        // The changelog record written for the start holds it too, so a restore keeps it.
        let Some(Output::State {
            value: Some(record),
            ..
        }) = out.last()
        else {
            panic!("the start writes the saga's state last: {out:?}")
        };
        assert!(String::from_utf8_lossy(record).contains(trace));

        // The step times out: its retry is emitted on a tick, after a marker with the trace.
        let mut fired = Vec::new();
        p.on_tick(T0 + 3_600_000, &mut fired);
        let first_record = fired
            .iter()
            .position(|o| !matches!(o, Output::Trace(_) | Output::State { .. }))
            .expect("the timeout emits records");
        assert_eq!(
            fired[..first_record],
            [Output::Trace(trace.into())],
            "{fired:?}"
        );
    }

    #[test]
    fn tasks_add_their_sagas_to_the_gauges_and_take_them_back_when_dropped() {
        let m = Metrics::new();
        let mut first = SagaProcessor::new(engine(), &m.sagas);
        let mut second = SagaProcessor::new(engine(), &m.sagas);
        let mut out = Vec::new();
        first
            .on_incident(trigger("a"), BTreeMap::new(), T0, &mut out)
            .unwrap();
        first
            .on_incident(trigger("b"), BTreeMap::new(), T0, &mut out)
            .unwrap();
        second
            .on_incident(trigger("c"), BTreeMap::new(), T0, &mut out)
            .unwrap();
        // Every running saga waits on its step's timeout.
        assert_eq!(gauges(&m), (3, 0, 3, 3));

        // A revoked partition's task goes, and its sagas with it; the other task's stay.
        drop(first);
        assert_eq!(gauges(&m), (1, 0, 1, 1));

        // The next owner counts what it restores from the changelog.
        let state = second.store().record("c").unwrap().to_vec();
        let mut successor = SagaProcessor::new(engine(), &m.sagas);
        successor.restore(SAGA_STORE, "c", Some(&state));
        assert_eq!(gauges(&m), (2, 0, 2, 2));
        successor.restore(SAGA_STORE, "c", None);
        assert_eq!(gauges(&m), (1, 0, 1, 1));

        drop((second, successor));
        assert_eq!(gauges(&m), (0, 0, 0, 0));
    }

    #[test]
    fn inputs_are_counted_by_what_they_did() {
        let m = Metrics::new();
        let mut p = SagaProcessor::new(engine(), &m.sagas);
        let mut out = Vec::new();
        p.on_incident(trigger("a"), BTreeMap::new(), T0, &mut out)
            .unwrap();
        p.on_incident(trigger("a"), BTreeMap::new(), T0 + 1, &mut out)
            .unwrap();
        let command = out
            .iter()
            .find_map(|o| match o {
                Output::Command(c) => Some(c.clone()),
                _ => None,
            })
            .unwrap();
        let mut result = crate::model::AgentResult {
            command_id: command.command_id.clone(),
            saga_id: "nobody".into(),
            correlation_id: command.correlation_id.clone(),
            step: command.step.clone(),
            attempt: command.attempt,
            agent_type: command.agent_type,
            agent_id: "agent-1".into(),
            status: crate::model::ResultStatus::Succeeded,
            output: Default::default(),
            error: None,
            finished_at: T0 + 2,
            proof: None,
        };
        p.process(Event::AgentResult(result.clone()), T0 + 2, &mut out)
            .unwrap();
        result.saga_id = "a".into();
        p.process(Event::AgentResult(result), T0 + 3, &mut out)
            .unwrap();
        let count =
            |input: &str, outcome: &str| m.sagas.inputs.with_label_values(&[input, outcome]).get();
        assert_eq!(count("trigger", "applied"), 1);
        assert_eq!(count("trigger", "duplicate"), 1);
        assert_eq!(count("result", "unknown"), 1);
        assert_eq!(count("result", "applied"), 1);
    }

    #[test]
    fn a_query_answers_the_state_of_a_saga_the_task_holds() {
        let m = Metrics::new();
        let mut p = SagaProcessor::new(engine(), &m.sagas);
        p.on_incident(trigger("a"), BTreeMap::new(), T0, &mut Vec::new())
            .unwrap();
        let state = p.query(SAGA_STORE, "a").unwrap();
        assert_eq!(state["saga_id"], "a");
        assert_eq!(state["status"], "RUNNING");
        assert_eq!(state["workflow"], "triage");
        assert_eq!(state["current"]["attempt"], 1);
        assert_eq!(state["current"]["phase"], "waiting");
        assert_eq!(state["timer"]["kind"], "step_timeout");
        assert_eq!(state["started_at"], T0);
        assert_eq!(p.query(SAGA_STORE, "b"), None);
        assert_eq!(p.query("other-store", "a"), None);
    }
}
