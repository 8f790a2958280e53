//! Limits that decide which anomalies are valid; the rest go to the dead-letter topic.

use serde::Deserialize;

use super::Problem;

/// The `[validation]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Largest persistence diagram accepted, in points. Bounds the cost of one record.
    pub max_diagram_points: usize,
    /// How far in the future `detected_at` may be, in milliseconds, before the record is
    /// refused as clock skew or garbage.
    pub max_future_skew_ms: i64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            max_diagram_points: 4096,
            max_future_skew_ms: 5 * 60 * 1000,
        }
    }
}

impl ValidationConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if self.max_diagram_points == 0 {
            problems.push(Problem::new(
                "validation.max_diagram_points",
                0,
                "must be > 0",
            ));
        }
        if self.max_future_skew_ms < 0 {
            problems.push(Problem::new(
                "validation.max_future_skew_ms",
                self.max_future_skew_ms,
                "must be >= 0",
            ));
        }
    }
}
