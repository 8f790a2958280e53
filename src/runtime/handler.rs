//! One record's way through the service, shared by the Kafka and embedded runtimes:
//! decode (may wait on the registry), then process and encode (synchronous, fast).

use std::time::{Duration, Instant};

use tracing::warn;

use crate::codec::Codec;
use crate::config::TopicsConfig;
use crate::dead_letter::{stage_label, Rejection};
use crate::model::TdaAnomaly;
use crate::processor::{Event, Output, ProcessError, Processor};
use crate::telemetry::Metrics;

use super::trace::{traceparent, TRACEPARENT};
use super::{InputRecord, OutputRecord};

/// Turns input records into output records for one topology.
#[derive(Clone)]
pub struct RecordHandler {
    codec: Codec,
    topics: TopicsConfig,
    metrics: Metrics,
}

impl RecordHandler {
    pub fn new(codec: Codec, topics: TopicsConfig, metrics: Metrics) -> Self {
        Self {
            codec,
            topics,
            metrics,
        }
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
            match self.codec.decode::<TdaAnomaly>(value).await {
                Ok(anomaly) => return Ok(Event::Anomaly(anomaly)),
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
        let result = decoded.and_then(|event| {
            let mut outputs = Vec::with_capacity(1);
            processor
                .process(event, now_ms, &mut outputs)
                .map_err(|e| match e {
                    ProcessError::Invalid(v) => Rejection::validate(v.code(), v.to_string()),
                    ProcessError::Failed(reason) => Rejection::process(reason),
                })?;
            outputs
                .iter()
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
        let (topic, value, correlation_id, id) = match output {
            Output::Command(c) => (
                &self.topics.commands,
                self.codec.encode(&self.topics.commands, c),
                &c.correlation_id,
                &c.command_id,
            ),
        };
        let value = value
            .map_err(|e| Rejection::produce(format!("cannot encode output for {topic}: {e}")))?;
        let trace = traceparent(input.header(TRACEPARENT), correlation_id, id);
        Ok(OutputRecord {
            topic: topic.clone(),
            key: Some(output.key().as_bytes().to_vec()),
            value,
            headers: vec![(TRACEPARENT.into(), trace.into_bytes())],
        })
    }

    fn dead_letter(&self, rejection: Rejection, record: &InputRecord, now_ms: i64) -> OutputRecord {
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset,
            stage = stage_label(rejection.stage), reason = %rejection.reason,
            "record sent to dead-letter topic");
        self.metrics
            .dead_letters
            .with_label_values(&[stage_label(rejection.stage), &rejection.code])
            .inc();
        let letter = rejection.into_dead_letter(record, now_ms);
        let value = self
            .codec
            .encode(&self.topics.dead_letters, &letter)
            .expect(
                "a DeadLetter always encodes: its schema is embedded and registered at start-up",
            );
        OutputRecord {
            topic: self.topics.dead_letters.clone(),
            key: record.key.clone(),
            value,
            headers: record.headers.clone(),
        }
    }
}
