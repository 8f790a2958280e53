//! Dead letters: one constructor per failure stage, so every rejection says where it failed.
//!
//! A dead letter must always fit where it goes. The original key and value are kept up to
//! [`MAX_KEPT_BYTES`] each; a longer one is cut, and the reason then says how long it was and
//! its FNV-1a 64 hash, so the record can still be found and matched. The reason itself is
//! kept to [`MAX_REASON_BYTES`].

use crate::model::{DeadLetter, DeadLetterStage};
use crate::runtime::InputRecord;

/// Why a record is rejected: its stage, a low-cardinality code for metrics, and a precise
/// reason for the person reading the dead-letter topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub stage: DeadLetterStage,
    pub code: String,
    pub reason: String,
}

impl Rejection {
    /// The bytes are not a readable record: no framing, unknown schema, bad Avro, no key.
    pub fn decode(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Decode,
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// A store's changelog record that the processor could not read back on restore (one of
    /// another version, say): the state it held is dropped, and this dead letter keeps it.
    pub fn changelog_unreadable(reason: impl Into<String>) -> Self {
        Self::decode("changelog_unreadable", reason)
    }

    /// The record decoded but breaks a data contract.
    pub fn validate(code: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Validate,
            code: code.into(),
            reason: reason.into(),
        }
    }

    /// A processor failed on a valid record.
    pub fn process(reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Process,
            code: "processor_failed".into(),
            reason: reason.into(),
        }
    }

    /// An output of the record is larger than the broker accepts (`message.max.bytes`).
    pub fn output_too_large(reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Produce,
            code: "output_too_large".into(),
            reason: reason.into(),
        }
    }

    /// An output of the record could not be encoded or produced.
    pub fn produce(reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Produce,
            code: "output_unencodable".into(),
            reason: reason.into(),
        }
    }

    /// The dead letter for `record`, carrying its coordinates and its original bytes (cut
    /// to [`MAX_KEPT_BYTES`], see the module doc).
    pub fn into_dead_letter(self, record: &InputRecord, now_ms: i64) -> DeadLetter {
        let mut reason = cut_text(self.reason, MAX_REASON_BYTES);
        let key = record.key.as_deref().map(|k| keep("key", k, &mut reason));
        let value = record
            .value
            .as_deref()
            .map(|v| keep("value", v, &mut reason));
        DeadLetter {
            reason,
            error_class: self.code,
            stage: self.stage,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key,
            value,
            at: now_ms,
        }
    }
}

/// The most of an original key or value a dead letter carries: a valid record is far
/// smaller, and key, value and reason together stay well under the 1 MB a broker takes.
pub const MAX_KEPT_BYTES: usize = 256 * 1024;

/// The longest reason a dead letter carries.
pub const MAX_REASON_BYTES: usize = 2048;

/// `bytes`, cut to [`MAX_KEPT_BYTES`]; a cut is noted in `reason` with the full length and hash.
fn keep(what: &str, bytes: &[u8], reason: &mut String) -> Vec<u8> {
    if bytes.len() <= MAX_KEPT_BYTES {
        return bytes.to_vec();
    }
    reason.push_str(&format!(
        " [original {what}: {} bytes, fnv1a64 {:016x}; the first {MAX_KEPT_BYTES} kept]",
        bytes.len(),
        fnv1a64(bytes)
    ));
    bytes[..MAX_KEPT_BYTES].to_vec()
}

fn cut_text(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// FNV-1a, 64 bits: stable across builds and platforms, enough to match a cut payload with
/// its original (not a security hash).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub fn stage_label(stage: DeadLetterStage) -> &'static str {
    match stage {
        DeadLetterStage::Decode => "DECODE",
        DeadLetterStage::Validate => "VALIDATE",
        DeadLetterStage::Process => "PROCESS",
        DeadLetterStage::Produce => "PRODUCE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: usize, value: usize) -> InputRecord {
        InputRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            key: Some(vec![b'k'; key]),
            value: Some(vec![b'v'; value]),
            timestamp_ms: None,
            headers: vec![],
        }
    }

    #[test]
    fn a_small_record_is_kept_whole() {
        let letter = Rejection::decode("c", "why").into_dead_letter(&record(3, 10), 1);
        assert_eq!(letter.key.unwrap().len(), 3);
        assert_eq!(letter.value.unwrap().len(), 10);
        assert_eq!(letter.reason, "why");
    }

    #[test]
    fn a_near_megabyte_record_is_cut_with_its_length_and_hash() {
        let big = record(5, 999_000);
        let letter = Rejection::validate("c", "x".repeat(100_000)).into_dead_letter(&big, 1);
        assert_eq!(letter.value.as_ref().unwrap().len(), MAX_KEPT_BYTES);
        let hash = format!("{:016x}", fnv1a64(big.value.as_ref().unwrap()));
        assert!(letter.reason.contains("999000 bytes"), "{}", letter.reason);
        assert!(letter.reason.contains(&hash));
        assert!(letter.reason.len() < MAX_REASON_BYTES + 200);
        assert_eq!(letter.key.unwrap().len(), 5, "the key is kept whole");
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
    }
}
