//! `aura.v1.TdaAnomaly`: what the upstream TDA system publishes on `tda.anomalies`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How bad the upstream detector thinks the anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// One point of a persistence diagram: a topological feature of `dimension`
/// born at `birth` and dying at `death` (filtration values).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PersistencePoint {
    pub dimension: i32,
    pub birth: f64,
    pub death: f64,
}

/// A change in the shape of a source's data, as detected upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TdaAnomaly {
    pub anomaly_id: String,
    pub correlation_id: String,
    pub source: String,
    /// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
    pub detected_at: i64,
    /// Detector score in [0, 1].
    pub anomaly_score: f64,
    pub severity: Severity,
    /// Betti numbers by homology dimension (b0, b1, ...).
    pub betti: Vec<i32>,
    pub diagram: Vec<PersistencePoint>,
    /// Optional embedding of the anomaly; may be empty.
    pub signature: Vec<f32>,
    pub tags: Vec<String>,
    pub entities: Vec<String>,
    pub attributes: HashMap<String, String>,
}
