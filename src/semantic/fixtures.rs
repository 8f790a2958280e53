//! Test fixtures shared by the engine's unit tests.

use std::collections::HashMap;

use crate::model::{PersistencePoint, Severity, TdaAnomaly};

/// An anomaly with `diagram` and `severity`, two entities and three tags (two distinct).
pub fn anomaly(diagram: Vec<PersistencePoint>, severity: Severity) -> TdaAnomaly {
    TdaAnomaly {
        anomaly_id: "a".into(),
        correlation_id: "c".into(),
        source: "svc".into(),
        detected_at: 1_000,
        anomaly_score: 0.5,
        severity,
        betti: vec![],
        diagram,
        signature: vec![],
        tags: vec!["x".into(), "x".into(), "y".into()],
        entities: vec!["e1".into(), "e2".into()],
        attributes: HashMap::new(),
    }
}

/// An essential component and one loop dying at `death`.
pub fn loop_diagram(death: f64) -> Vec<PersistencePoint> {
    vec![
        PersistencePoint {
            dimension: 0,
            birth: 0.0,
            death: f64::INFINITY,
        },
        PersistencePoint {
            dimension: 1,
            birth: 0.1,
            death,
        },
    ]
}
