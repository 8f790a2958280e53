//! The learned pattern library as a global table: one changelog record per pattern that online learning
//! changed, keyed by pattern name, in the compacted topic `<group.id>-patterns-changelog`.
//!
//! The pattern library is shared by every partition and every instance, so it is state of the whole
//! application rather than of one partition task. The task that learns from a feedback record writes the
//! changed pattern to the changelog in the transaction that commits the feedback's offset; every instance
//! reads the changelog in full, like a Kafka Streams `GlobalKTable`, restores it before it processes any
//! input and applies later records as they come, so every instance learns what any of them learned.
//!
//! **Two instances updating one pattern at once: last write wins.** Each record carries the whole
//! pattern as its writer saw it, so when two tasks learn from feedback about the same pattern at the
//! same time, the record written later to the changelog replaces the earlier one on every instance, and
//! the prototype the earlier one added is lost (compaction keeps the later record too). Feedback is a
//! trickle of human confirmations, so this is rare, and the lost prototype comes back the next time a
//! similar anomaly is confirmed. A tombstone resets the pattern to its shipped form (or removes a
//! pattern that learning created).
//!
//! Records are TOML, the pattern library's own format, because prototype diagrams hold infinite deaths
//! that JSON cannot carry.

use serde::{Deserialize, Serialize};

use super::patterns::PatternSpec;

/// The store: its changelog is `<group.id>-patterns-changelog`.
pub const PATTERNS_STORE: &str = "patterns";

/// When enabled, routing uses the shipped library (the one the service started with), not the learned
/// one; learning goes on recording, so disabling the flag brings the learned library back. The library
/// is one for every source, so the flag's `rollout_percent` is not used.
pub const FLAG_SHIPPED: &str = "patterns.shipped";

/// One learned pattern, as written to the changelog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LearnedPattern {
    /// The library version right after the change, on the instance that made it; an instance applying
    /// the record moves its own version to at least this.
    pub library_version: u64,
    /// The anomaly source each prototype was learned from, in the order of `pattern.prototypes` (empty
    /// for shipped or fitted prototypes); the bound on one source's share needs it after a restart.
    #[serde(default)]
    pub sources: Vec<String>,
    /// The whole pattern after the change.
    pub pattern: PatternSpec,
}

/// A changelog value that is not a learned pattern.
#[derive(Debug, thiserror::Error)]
pub enum LearnedError {
    #[error("a learned pattern record is not UTF-8")]
    NotUtf8,
    #[error("a learned pattern record is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("learned pattern record keyed {key:?} holds pattern {name:?}")]
    KeyMismatch { key: String, name: String },
}

impl LearnedPattern {
    pub fn to_bytes(&self) -> Vec<u8> {
        toml::to_string(self)
            .expect("a pattern always serializes to TOML, as the library file does")
            .into_bytes()
    }

    /// Reads a changelog record, checking that it is keyed by its pattern's name.
    pub fn from_bytes(key: &str, bytes: &[u8]) -> Result<Self, LearnedError> {
        let text = std::str::from_utf8(bytes).map_err(|_| LearnedError::NotUtf8)?;
        let record: LearnedPattern = toml::from_str(text)?;
        if record.pattern.name != key {
            return Err(LearnedError::KeyMismatch {
                key: key.to_string(),
                name: record.pattern.name,
            });
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::PatternLibrary;

    #[test]
    fn records_round_trip_with_infinite_deaths_and_check_their_key() {
        let pattern = PatternLibrary::builtin().patterns[0].clone();
        assert!(pattern
            .prototypes
            .iter()
            .flatten()
            .any(|p| p.2.is_infinite()));
        let record = LearnedPattern {
            library_version: 7,
            sources: vec![String::new(); pattern.prototypes.len()],
            pattern,
        };
        let bytes = record.to_bytes();
        let name = record.pattern.name.clone();
        assert_eq!(LearnedPattern::from_bytes(&name, &bytes).unwrap(), record);
        assert!(matches!(
            LearnedPattern::from_bytes("other", &bytes),
            Err(LearnedError::KeyMismatch { .. })
        ));
        assert!(LearnedPattern::from_bytes(&name, b"not = [toml").is_err());
    }
}
