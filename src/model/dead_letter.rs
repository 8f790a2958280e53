//! `aura.v1.DeadLetter`: a poison record, published on `orchestration.dlq` under its original key.

use serde::{Deserialize, Serialize};

/// Where in the pipeline a record failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadLetterStage {
    Decode,
    Validate,
    Process,
    Produce,
}

/// A record the service could not handle, with why and where it came from, so it can be
/// inspected and replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Precise enough to act on, e.g. `unknown schema id 4242`.
    pub reason: String,
    /// Stable, low-cardinality name of the failure (`unknown_schema_id`), for metrics labels.
    pub error_class: String,
    pub stage: DeadLetterStage,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The original key bytes; `None` when the record had no key.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub key: Option<Vec<u8>>,
    /// The original value bytes; `None` for a tombstone.
    #[serde(with = "apache_avro::serde::bytes_opt")]
    pub value: Option<Vec<u8>>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
