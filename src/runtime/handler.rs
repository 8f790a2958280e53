//! One record's way through the service, shared by the Kafka and embedded runtimes:
//! decode (may wait on the registry), then process and encode (synchronous, fast).

use std::time::{Duration, Instant};

use tracing::{warn, Instrument as _};

use crate::codec::{Codec, CodecError};
use crate::config::InternalTopics;
use crate::dead_letter::{stage_label, Rejection};
use crate::model::{AgentResult, AgentVote, RoutingFeedback, TdaAnomaly};
use crate::processor::{Event, Output, ProcessError, Processor};
use crate::telemetry::Metrics;
use crate::topology::{Input, OutputKind, Topology};
use crate::tracing_setup::{context, spans_enabled};

use super::trace::{traceparent, TRACEPARENT};
use super::{InputRecord, OutputRecord};

/// Turns input records into output records for one topology.
#[derive(Clone)]
pub struct RecordHandler {
    codec: Codec,
    topology: std::sync::Arc<Topology>,
    metrics: Metrics,
}

impl RecordHandler {
    pub fn new(codec: Codec, topology: Topology, metrics: Metrics) -> Self {
        Self {
            codec,
            topology: std::sync::Arc::new(topology),
            metrics,
        }
    }

    pub fn internal_topics(&self) -> &InternalTopics {
        &self.topology.internal
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// Decodes a record into an event, or says why it is poison.
    ///
    /// A transient failure (registry unreachable) is retried here with backoff, forever:
    /// the record is not poison, and skipping it would lose it. Only this partition waits.
    pub async fn decode(&self, record: &InputRecord) -> Result<Event, Rejection> {
        let span = crate::stage_span!("decode", topic = %record.topic, partition = record.partition,
            offset = record.offset);
        set_input_parent(&span, record);
        self.decode_record(record).instrument(span).await
    }

    async fn decode_record(&self, record: &InputRecord) -> Result<Event, Rejection> {
        if record.key.as_deref().is_none_or(|k| k.is_empty()) {
            return Err(Rejection::decode(
                "empty_key",
                "record has no key (the correlation key is required)",
            ));
        }
        let Some(value) = record.value.as_deref() else {
            return Err(Rejection::decode(
                "tombstone",
                "record has no value (tombstone)",
            ));
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.decode_value(&record.topic, value).await {
                Ok(event) => return Ok(event),
                Err(e) if e.is_transient() => {
                    self.metrics
                        .transient_retries
                        .with_label_values(&["registry"])
                        .inc();
                    warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
                        error = %e, backoff_ms = backoff.as_millis() as u64, "decode retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(Rejection::decode(e.class(), e.to_string())),
            }
        }
    }

    /// The event a topic carries, as the topology declares it.
    async fn decode_value(&self, topic: &str, value: &[u8]) -> Result<Event, CodecError> {
        match self.topology.input(topic).map(|i| i.input) {
            Some(Input::Anomalies | Input::Rekeyed) => Ok(Event::Anomaly(
                self.codec.decode::<TdaAnomaly>(value).await?,
            )),
            Some(Input::AgentResults) => Ok(Event::AgentResult(
                self.codec.decode::<AgentResult>(value).await?,
            )),
            Some(Input::AgentVotes) => Ok(Event::AgentVote(
                self.codec.decode::<AgentVote>(value).await?,
            )),
            Some(Input::Feedback) => Ok(Event::Feedback(
                self.codec.decode::<RoutingFeedback>(value).await?,
            )),
            Some(Input::Context | Input::Registry | Input::Flags) | None => {
                Err(CodecError::TopicNotRegistered {
                    topic: format!("{topic} (not a stream input of the topology)"),
                })
            }
        }
    }

    /// Runs the processor on a decoded record and encodes what it emits. A rejection, at
    /// any stage, becomes one dead letter instead.
    pub fn handle(
        &self,
        processor: &mut dyn Processor,
        record: &InputRecord,
        decoded: Result<Event, Rejection>,
        now_ms: i64,
        started: Instant,
    ) -> Vec<OutputRecord> {
        let span = crate::stage_span!("process", topic = %record.topic,
            partition = record.partition, offset = record.offset);
        set_input_parent(&span, record);
        let _entered = span.enter();
        // What a saga started by this record keeps as its trace: this span, or without spans
        // the record's own header.
        let input_trace = context::of_span(&span).or_else(|| {
            record
                .header(TRACEPARENT)
                .and_then(|h| std::str::from_utf8(h).ok())
                .map(str::to_owned)
        });
        let result = decoded.and_then(|event| {
            let mut outputs = Vec::with_capacity(1);
            context::with_input_trace(input_trace, || {
                processor.process(event, now_ms, &mut outputs)
            })
            .map_err(|e| match e {
                ProcessError::Invalid(v) => Rejection::validate(v.code(), v.to_string()),
                ProcessError::Failed(reason) => Rejection::process(reason),
                ProcessError::Unauthenticated(r) => Rejection::validate(r.code(), r.to_string()),
                ProcessError::Vote(r) => Rejection::validate(r.code(), r.to_string()),
            })?;
            outputs
                .iter()
                .filter(|o| !matches!(o, Output::Trace(_)))
                .map(|o| self.encode(o, record))
                .collect::<Result<Vec<_>, _>>()
        });
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(rejection) => vec![self.dead_letter(rejection, record, now_ms)],
        };
        self.metrics
            .processing_seconds
            .observe(started.elapsed().as_secs_f64());
        outputs
    }

    fn encode(&self, output: &Output, input: &InputRecord) -> Result<OutputRecord, Rejection> {
        if let Output::GlobalState { store, key, value } = output {
            // A global store's key picks its partition, so one key's writes stay in order.
            return Ok(OutputRecord {
                topic: self.topology.internal.changelog(store),
                partition: None,
                key: Some(key.as_bytes().to_vec()),
                value: value.clone(),
                headers: vec![],
            });
        }
        let Some(kind) = OutputKind::of(output) else {
            let Output::State { store, key, value } = output else {
                unreachable!("only state writes and trace markers have no output kind, and markers are not encoded")
            };
            // Changelogs hold the store's own bytes, with no trace: they are state, not events.
            return Ok(OutputRecord {
                topic: self.topology.internal.changelog(store),
                partition: Some(input.partition),
                key: Some(key.as_bytes().to_vec()),
                value: value.clone(),
                headers: vec![],
            });
        };
        let topic = self.topology.topic(kind);
        let c = &self.codec;
        let (value, correlation_id, id) = match output {
            Output::Command(x) => (c.encode(topic, x), &x.correlation_id, &x.command_id),
            Output::Correlation(x) => (c.encode(topic, x), &x.correlation_id, &x.incident_id),
            Output::Rekeyed(x) => (c.encode(topic, x), &x.correlation_id, &x.anomaly_id),
            Output::SagaEvent(x) => (c.encode(topic, x), &x.correlation_id, &x.saga_id),
            Output::Compensation(x) => (c.encode(topic, x), &x.correlation_id, &x.command_id),
            Output::Escalation(x) => (c.encode(topic, x), &x.correlation_id, &x.saga_id),
            Output::Decision(x) => (c.encode(topic, x), &x.correlation_id, &x.decision_id),
            Output::State { .. } | Output::GlobalState { .. } | Output::Trace(_) => {
                unreachable!("handled above")
            }
        };
        let value = value
            .map_err(|e| Rejection::produce(format!("cannot encode output for {topic}: {e}")))?;
        // With spans, an output carries the context of the span that made it (a child of the
        // input's trace); without, the input's trace id with a span id of its own.
        let trace = spans_enabled()
            .then(|| context::of_span(&tracing::Span::current()))
            .flatten()
            .unwrap_or_else(|| traceparent(input.header(TRACEPARENT), correlation_id, id));
        Ok(OutputRecord {
            topic: topic.to_string(),
            partition: None,
            key: Some(output.key().as_bytes().to_vec()),
            value: Some(value),
            headers: vec![(TRACEPARENT.into(), trace.into_bytes())],
        })
    }

    /// Runs the timers of the processor that owns `partition` at `now_ms` and encodes what they
    /// emit. A timer's output that cannot be encoded is a bug in this service, not in any input:
    /// it is logged and dropped. Outputs after an [`Output::Trace`] marker continue that trace
    /// (their saga's), as if it had been the header of an input.
    pub fn tick(
        &self,
        processor: &mut dyn Processor,
        partition: i32,
        now_ms: i64,
    ) -> Vec<OutputRecord> {
        let mut outputs = Vec::new();
        processor.on_tick(now_ms, &mut outputs);
        let mut input = InputRecord {
            topic: String::new(),
            partition,
            offset: -1,
            key: None,
            value: None,
            timestamp_ms: None,
            headers: vec![],
        };
        let mut span = tracing::Span::none();
        let mut encoded = Vec::with_capacity(outputs.len());
        for output in &outputs {
            if let Output::Trace(trace) = output {
                input.headers = match trace.is_empty() {
                    true => vec![],
                    false => vec![(TRACEPARENT.into(), trace.clone().into_bytes())],
                };
                span = crate::stage_span!("timer", partition);
                set_input_parent(&span, &input);
                continue;
            }
            let _entered = span.enter();
            match self.encode(output, &input) {
                Ok(r) => encoded.push(r),
                Err(rejection) => {
                    tracing::error!(reason = %rejection.reason, "timer output dropped");
                }
            }
        }
        encoded
    }

    pub(crate) fn dead_letter(
        &self,
        rejection: Rejection,
        record: &InputRecord,
        now_ms: i64,
    ) -> OutputRecord {
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
            stage = stage_label(rejection.stage), reason = %rejection.reason,
            "record sent to dead-letter topic");
        self.metrics
            .dead_letters
            .with_label_values(&[stage_label(rejection.stage), &rejection.code])
            .inc();
        let letter = rejection.into_dead_letter(record, now_ms);
        let topic = self.topology.topic(OutputKind::DeadLetter);
        let value = self.codec.encode(topic, &letter).expect(
            "a DeadLetter always encodes: its schema is embedded and registered at start-up",
        );
        OutputRecord {
            topic: topic.to_string(),
            partition: None,
            key: record.key.clone(),
            value: Some(value),
            headers: record.headers.clone(),
        }
    }
}

/// Makes the record's trace the parent of `span`: its `traceparent` header, or without one a
/// trace derived from its key (the correlation id), so the spans of one record share a trace.
fn set_input_parent(span: &tracing::Span, record: &InputRecord) {
    if span.is_disabled() {
        return;
    }
    match record.header(TRACEPARENT) {
        Some(header) if context::parse(header).is_some() => context::set_parent(span, header),
        _ => {
            let key = record.key.as_deref().unwrap_or_default();
            let derived = traceparent(None, &String::from_utf8_lossy(key), "input");
            context::set_parent(span, derived.as_bytes());
        }
    }
}
