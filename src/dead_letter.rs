//! Dead letters: one constructor per failure stage, so every rejection says where it failed.

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

    /// An output of the record could not be encoded or produced.
    pub fn produce(reason: impl Into<String>) -> Self {
        Self {
            stage: DeadLetterStage::Produce,
            code: "output_unencodable".into(),
            reason: reason.into(),
        }
    }

    /// The dead letter for `record`, carrying its original bytes and coordinates.
    pub fn into_dead_letter(self, record: &InputRecord, now_ms: i64) -> DeadLetter {
        DeadLetter {
            reason: self.reason,
            error_class: self.code,
            stage: self.stage,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            key: record.key.clone(),
            value: record.value.clone(),
            at: now_ms,
        }
    }
}

pub fn stage_label(stage: DeadLetterStage) -> &'static str {
    match stage {
        DeadLetterStage::Decode => "DECODE",
        DeadLetterStage::Validate => "VALIDATE",
        DeadLetterStage::Process => "PROCESS",
        DeadLetterStage::Produce => "PRODUCE",
    }
}
