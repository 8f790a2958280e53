//! The `[correlation]` table: when an anomaly joins an open incident instead of opening one.

use serde::Deserialize;

use super::Problem;

/// Session windows per correlation key, optionally gated by persistence-diagram distance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    /// An anomaly joins the key's open incident when its `detected_at` is within this many
    /// milliseconds of the incident's latest anomaly (a session window's gap, as in Kafka
    /// Streams' `SessionWindows`). A storm keeps its incident open for as long as it lasts.
    pub gap_ms: i64,
    /// When set, an anomaly also needs a diagram within this sliced Wasserstein distance of the
    /// incident's (its first anomaly's) to join it; a farther one opens a second incident of
    /// the same key. Unset, distance is reported but never splits an incident.
    pub max_distance: Option<f64>,
    /// Open incidents one correlation key may hold at once (only more than one when
    /// `max_distance` splits them); the oldest is closed to make room.
    pub max_open_per_key: usize,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        Self {
            gap_ms: 5 * 60 * 1000,
            max_distance: None,
            max_open_per_key: 4,
        }
    }
}

impl CorrelationConfig {
    pub(super) fn validate(&self, problems: &mut Vec<Problem>) {
        if self.gap_ms <= 0 {
            problems.push(Problem::new(
                "correlation.gap_ms",
                self.gap_ms,
                "must be > 0",
            ));
        }
        if let Some(d) = self.max_distance {
            if !(d.is_finite() && d >= 0.0) {
                problems.push(Problem::new(
                    "correlation.max_distance",
                    d,
                    "must be a finite number >= 0",
                ));
            }
        }
        if self.max_open_per_key == 0 {
            problems.push(Problem::new(
                "correlation.max_open_per_key",
                "0",
                "must be >= 1",
            ));
        }
    }
}
