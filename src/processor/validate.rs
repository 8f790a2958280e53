//! The anomaly contract: what a `TdaAnomaly` must satisfy before anything acts on it.

use crate::config::ValidationConfig;
use crate::model::TdaAnomaly;

/// A broken contract. `code()` is the low-cardinality metric label; the message is the
/// dead-letter reason and names the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    #[error("missing {field}: must be a non-empty string")]
    MissingId { field: &'static str },
    #[error("anomaly_score must be a number in [0, 1], got {0}")]
    ScoreOutOfRange(f64),
    #[error("diagram point {index} has death {death} < birth {birth}")]
    DeathBeforeBirth {
        index: usize,
        birth: f64,
        death: f64,
    },
    #[error("diagram point {index} has a non-finite birth {birth}")]
    NonFiniteBirth { index: usize, birth: f64 },
    #[error("diagram has {points} points, more than the configured cap of {cap}")]
    DiagramTooLarge { points: usize, cap: usize },
    #[error("detected_at {detected_at} is {ahead_ms} ms in the future (allowed skew {max_ms} ms)")]
    FutureTimestamp {
        detected_at: i64,
        ahead_ms: i64,
        max_ms: i64,
    },
}

impl ValidationError {
    /// A stable, low-cardinality label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingId { .. } => "missing_id",
            Self::ScoreOutOfRange(_) => "score_out_of_range",
            Self::DeathBeforeBirth { .. } => "death_before_birth",
            Self::NonFiniteBirth { .. } => "non_finite_birth",
            Self::DiagramTooLarge { .. } => "diagram_too_large",
            Self::FutureTimestamp { .. } => "future_timestamp",
        }
    }
}

/// Checks every contract rule, cheapest first, and reports the first broken one.
///
/// An infinite death is allowed (an essential feature that never dies); a NaN death is not,
/// since `NaN < birth` is false it is caught explicitly.
pub fn validate(
    anomaly: &TdaAnomaly,
    limits: &ValidationConfig,
    now_ms: i64,
) -> Result<(), ValidationError> {
    for (field, value) in [
        ("anomaly_id", &anomaly.anomaly_id),
        ("correlation_id", &anomaly.correlation_id),
        ("source", &anomaly.source),
    ] {
        if value.trim().is_empty() {
            return Err(ValidationError::MissingId { field });
        }
    }
    let score = anomaly.anomaly_score;
    if !(0.0..=1.0).contains(&score) {
        return Err(ValidationError::ScoreOutOfRange(score));
    }
    if anomaly.diagram.len() > limits.max_diagram_points {
        return Err(ValidationError::DiagramTooLarge {
            points: anomaly.diagram.len(),
            cap: limits.max_diagram_points,
        });
    }
    for (index, p) in anomaly.diagram.iter().enumerate() {
        if !p.birth.is_finite() {
            return Err(ValidationError::NonFiniteBirth {
                index,
                birth: p.birth,
            });
        }
        if p.death.is_nan() || p.death < p.birth {
            return Err(ValidationError::DeathBeforeBirth {
                index,
                birth: p.birth,
                death: p.death,
            });
        }
    }
    let ahead_ms = anomaly.detected_at.saturating_sub(now_ms);
    if ahead_ms > limits.max_future_skew_ms {
        return Err(ValidationError::FutureTimestamp {
            detected_at: anomaly.detected_at,
            ahead_ms,
            max_ms: limits.max_future_skew_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PersistencePoint, Severity};

    pub(crate) fn anomaly() -> TdaAnomaly {
        TdaAnomaly {
            anomaly_id: "a-1".into(),
            correlation_id: "c-1".into(),
            source: "svc-a".into(),
            detected_at: 1_000,
            anomaly_score: 0.5,
            severity: Severity::High,
            betti: vec![1, 0],
            diagram: vec![PersistencePoint {
                dimension: 0,
                birth: 0.0,
                death: 1.0,
            }],
            signature: vec![],
            tags: vec![],
            entities: vec!["svc-a".into()],
            attributes: Default::default(),
        }
    }

    fn check(a: &TdaAnomaly) -> Result<(), ValidationError> {
        validate(a, &ValidationConfig::default(), 1_000)
    }

    #[test]
    fn a_good_anomaly_passes() {
        assert_eq!(check(&anomaly()), Ok(()));
    }

    #[test]
    fn each_rule_names_its_value() {
        let mut a = anomaly();
        a.anomaly_id.clear();
        assert_eq!(check(&a).unwrap_err().code(), "missing_id");

        let mut a = anomaly();
        a.anomaly_score = f64::NAN;
        assert_eq!(
            check(&a).unwrap_err().to_string(),
            "anomaly_score must be a number in [0, 1], got NaN"
        );

        let mut a = anomaly();
        a.anomaly_score = 1.5;
        assert_eq!(check(&a).unwrap_err().code(), "score_out_of_range");

        let mut a = anomaly();
        a.diagram[0].death = -1.0;
        assert_eq!(
            check(&a).unwrap_err().to_string(),
            "diagram point 0 has death -1 < birth 0"
        );

        let mut a = anomaly();
        a.diagram = vec![a.diagram[0]; 5000];
        assert_eq!(check(&a).unwrap_err().code(), "diagram_too_large");

        let mut a = anomaly();
        a.detected_at = 1_000 + 10 * 60 * 1000;
        assert_eq!(check(&a).unwrap_err().code(), "future_timestamp");
    }

    #[test]
    fn an_essential_feature_with_infinite_death_is_valid() {
        let mut a = anomaly();
        a.diagram[0].death = f64::INFINITY;
        assert_eq!(check(&a), Ok(()));
    }
}
