//! `aura.v1.Escalation`: a saga handed to a higher decision layer, published on
//! `orchestration.escalations`, keyed by `saga_id`.

use serde::{Deserialize, Serialize};

use super::routing::Layer;

/// A saga handed from one decision layer to a higher one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub saga_id: String,
    pub correlation_id: String,
    /// The step that triggered the escalation, if any.
    pub step: Option<String>,
    pub from_layer: Layer,
    pub to_layer: Layer,
    /// A consensus tie, a failed compensation, complexity above threshold...
    pub reason: String,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}
