//! Outputs the broker would never accept. librdkafka refuses a record larger than
//! `message.max.bytes` at `send`, and a refused output used to fail the task, restart the
//! stream loop and replay the same input forever. Such an output is poison: its input goes
//! to the dead-letter topic instead, before any of its outputs enter the transaction.

use tracing::error;

use crate::config::KafkaConfig;
use crate::dead_letter::Rejection;
use crate::runtime::{InputRecord, OutputRecord, RecordHandler};

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_BYTES: usize = 1_000_000;

/// What librdkafka adds to key, value and headers when it sizes a record (record batch
/// framing, varints, the timestamp), rounded up generously.
const FRAMING_BYTES: usize = 256;

/// The largest output this producer can send.
#[derive(Debug, Clone, Copy)]
pub struct SizeLimit {
    max_bytes: usize,
}

impl SizeLimit {
    /// From `message.max.bytes` in `[kafka.properties]`, else librdkafka's default.
    pub fn of(kafka: &KafkaConfig) -> Self {
        let max_bytes = kafka
            .properties
            .get("message.max.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_MAX_BYTES);
        Self { max_bytes }
    }

    #[cfg(test)]
    fn new(max_bytes: usize) -> Self {
        Self { max_bytes }
    }

    fn fits(&self, output: &OutputRecord) -> bool {
        size_of(output) + FRAMING_BYTES <= self.max_bytes
    }

    /// `outputs` as they are when every one fits; otherwise the one dead letter for `input`
    /// that says which output was too large (without the input's headers if even the dead
    /// letter would not fit with them).
    pub fn enforce(
        &self,
        outputs: Vec<OutputRecord>,
        handler: &RecordHandler,
        input: &InputRecord,
        now_ms: i64,
    ) -> Vec<OutputRecord> {
        let Some(big) = outputs.iter().find(|o| !self.fits(o)) else {
            return outputs;
        };
        let rejection = Rejection::output_too_large(format!(
            "an output for {} would be {} bytes, more than message.max.bytes {}",
            big.topic,
            size_of(big),
            self.max_bytes
        ));
        let mut letter = handler.dead_letter(rejection, input, now_ms);
        if !self.fits(&letter) {
            letter.headers.clear();
        }
        if !self.fits(&letter) {
            // Only a key near message.max.bytes gets here; the letter's own copy is capped.
            letter.key = letter.key.map(|k| k[..k.len().min(1024)].to_vec());
        }
        vec![letter]
    }

    /// Timer outputs have no input to dead-letter: one too large is a bug here, logged and
    /// dropped rather than failing the partition forever.
    pub fn drop_oversized(&self, outputs: Vec<OutputRecord>) -> Vec<OutputRecord> {
        outputs
            .into_iter()
            .filter(|o| {
                let fits = self.fits(o);
                if !fits {
                    error!(topic = %o.topic, bytes = size_of(o), max_bytes = self.max_bytes, "timer output too large for the broker; dropped");
                }
                fits
            })
            .collect()
    }
}

fn size_of(o: &OutputRecord) -> usize {
    o.key.as_ref().map_or(0, Vec::len)
        + o.value.as_ref().map_or(0, Vec::len)
        + o.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(value: usize, headers: usize) -> OutputRecord {
        OutputRecord {
            partition: None,
            topic: "t".into(),
            key: Some(b"k".to_vec()),
            value: Some(vec![0; value]),
            headers: vec![("h".into(), vec![0; headers])],
        }
    }

    #[test]
    fn outputs_over_message_max_bytes_are_found_and_dropped_on_timers() {
        let limit = SizeLimit::new(10_000);
        assert!(limit.fits(&output(9_000, 10)));
        assert!(!limit.fits(&output(10_000, 10)));
        assert!(!limit.fits(&output(10, 10_000)), "headers count too");
        let kept = limit.drop_oversized(vec![output(10, 0), output(20_000, 0), output(30, 0)]);
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn the_limit_follows_kafka_properties() {
        let mut kafka = KafkaConfig::default();
        assert_eq!(SizeLimit::of(&kafka).max_bytes, 1_000_000);
        kafka
            .properties
            .insert("message.max.bytes".into(), "2000000".into());
        assert_eq!(SizeLimit::of(&kafka).max_bytes, 2_000_000);
    }
}
