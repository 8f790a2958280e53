//! `aura.v1.CorrelationEvent`: anomalies grouped into one incident, published on
//! `orchestration.correlations`, keyed by `incident_id`.

use serde::{Deserialize, Serialize};

/// Anomalies grouped into one incident by time window and persistence-diagram distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrelationEvent {
    /// Sagas started for the incident use it as their `saga_id`.
    pub incident_id: String,
    /// Correlation id of the anomaly that opened the incident.
    pub correlation_id: String,
    pub anomaly_ids: Vec<String>,
    /// The distinct sources of those anomalies.
    pub sources: Vec<String>,
    /// Diagram distance of the latest anomaly to the incident's representative diagram.
    pub distance: f64,
    /// Correlation strength in [0, 1]; 1 means identical shape.
    pub score: f64,
    /// Milliseconds since the Unix epoch.
    pub window_start: i64,
    /// Milliseconds since the Unix epoch.
    pub window_end: i64,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
