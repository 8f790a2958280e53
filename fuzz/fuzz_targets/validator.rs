//! Any anomaly (any strings, any floats including NaN and infinities, any sizes) through
//! the contract check: it answers, never panics, and a record it accepts is within every cap.
#![no_main]

use arbitrary::Arbitrary;
use aura::config::ValidationConfig;
use aura::model::{PersistencePoint, Severity, TdaAnomaly};
use aura::processor::{caps, validate};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    anomaly_id: String,
    correlation_id: String,
    source: String,
    detected_at: i64,
    now_ms: i64,
    anomaly_score: f64,
    betti: Vec<i32>,
    diagram: Vec<(i32, f64, f64)>,
    signature: Vec<f32>,
    tags: Vec<String>,
    entities: Vec<String>,
    attributes: Vec<(String, String)>,
    max_diagram_points: u16,
    max_future_skew_ms: i64,
}

fuzz_target!(|input: Input| {
    let anomaly = TdaAnomaly {
        anomaly_id: input.anomaly_id,
        correlation_id: input.correlation_id,
        source: input.source,
        detected_at: input.detected_at,
        anomaly_score: input.anomaly_score,
        severity: Severity::High,
        betti: input.betti,
        diagram: input
            .diagram
            .into_iter()
            .map(|(dimension, birth, death)| PersistencePoint { dimension, birth, death })
            .collect(),
        signature: input.signature,
        tags: input.tags,
        entities: input.entities,
        attributes: input.attributes.into_iter().collect(),
    };
    let limits = ValidationConfig {
        max_diagram_points: usize::from(input.max_diagram_points).max(1),
        max_future_skew_ms: input.max_future_skew_ms.max(0),
    };
    match validate(&anomaly, &limits, input.now_ms) {
        Ok(()) => {
            assert!((0.0..=1.0).contains(&anomaly.anomaly_score));
            assert!(anomaly.anomaly_id.len() <= caps::ID_BYTES && !anomaly.anomaly_id.trim().is_empty());
            assert!(anomaly.betti.len() <= caps::BETTI);
            assert!(anomaly.betti.iter().all(|b| (0..=caps::BETTI_VALUE).contains(b)));
            assert!(anomaly.diagram.len() <= limits.max_diagram_points);
            assert!(anomaly.diagram.iter().all(|p| p.birth.is_finite() && p.death >= p.birth));
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
