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
    #[error("betti number {index} is {value}: a count of features must be in [0, {max}]")]
    BettiOutOfRange { index: usize, value: i32, max: i32 },
    #[error("{field} is {size} {unit}, more than the cap of {cap}")]
    FieldTooLarge {
        field: &'static str,
        size: usize,
        cap: usize,
        unit: &'static str,
    },
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
            Self::FieldTooLarge { .. } => "field_too_large",
            Self::BettiOutOfRange { .. } => "betti_out_of_range",
            Self::FutureTimestamp { .. } => "future_timestamp",
        }
    }
}

/// Caps on every field but the diagram (whose cap is configured): one record's cost, and
/// the size of everything derived from it (explanations, commands, dead letters), stays
/// bounded. Far above what a detector sends.
pub mod caps {
    /// Bytes of `anomaly_id`, `correlation_id`, `source`, and of each tag, entity, attribute key.
    pub const ID_BYTES: usize = 256;
    /// Bytes of one attribute value.
    pub const ATTRIBUTE_VALUE_BYTES: usize = 4096;
    /// Betti numbers (one per homology dimension).
    pub const BETTI: usize = 64;
    /// Floats in the embedding signature.
    pub const SIGNATURE: usize = 4096;
    /// Tags, entities and attributes, each.
    pub const LIST_ITEMS: usize = 256;
    /// Largest betti number: sums of them stay far from overflowing (a betti array of huge
    /// numbers overflowed the feature sums and panicked the partition task).
    pub const BETTI_VALUE: i32 = 1_000_000;
}

/// The first field of `anomaly` over its cap.
fn check_sizes(a: &TdaAnomaly) -> Result<(), ValidationError> {
    let over = |field, size, cap, unit| {
        (size > cap).then_some(ValidationError::FieldTooLarge {
            field,
            size,
            cap,
            unit,
        })
    };
    let longest = |items: &mut dyn Iterator<Item = usize>| items.max().unwrap_or(0);
    let checks = [
        over("anomaly_id", a.anomaly_id.len(), caps::ID_BYTES, "bytes"),
        over(
            "correlation_id",
            a.correlation_id.len(),
            caps::ID_BYTES,
            "bytes",
        ),
        over("source", a.source.len(), caps::ID_BYTES, "bytes"),
        over("betti", a.betti.len(), caps::BETTI, "numbers"),
        over("signature", a.signature.len(), caps::SIGNATURE, "floats"),
        over("tags", a.tags.len(), caps::LIST_ITEMS, "items"),
        over("entities", a.entities.len(), caps::LIST_ITEMS, "items"),
        over("attributes", a.attributes.len(), caps::LIST_ITEMS, "items"),
        over(
            "a tag",
            longest(&mut a.tags.iter().map(String::len)),
            caps::ID_BYTES,
            "bytes",
        ),
        over(
            "an entity",
            longest(&mut a.entities.iter().map(String::len)),
            caps::ID_BYTES,
            "bytes",
        ),
        over(
            "an attribute key",
            longest(&mut a.attributes.keys().map(String::len)),
            caps::ID_BYTES,
            "bytes",
        ),
        over(
            "an attribute value",
            longest(&mut a.attributes.values().map(String::len)),
            caps::ATTRIBUTE_VALUE_BYTES,
            "bytes",
        ),
    ];
    match checks.into_iter().flatten().next() {
        Some(e) => Err(e),
        None => Ok(()),
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
    check_sizes(anomaly)?;
    if let Some((index, &value)) = anomaly
        .betti
        .iter()
        .enumerate()
        .find(|(_, b)| !(0..=caps::BETTI_VALUE).contains(*b))
    {
        return Err(ValidationError::BettiOutOfRange {
            index,
            value,
            max: caps::BETTI_VALUE,
        });
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
    fn every_field_is_capped() {
        let big = "x".repeat(caps::ID_BYTES + 1);
        type Grow<'a> = Box<dyn Fn(&mut TdaAnomaly) + 'a>;
        let cases: Vec<(&str, Grow)> = vec![
            ("anomaly_id", Box::new(|a| a.anomaly_id = big.clone())),
            (
                "correlation_id",
                Box::new(|a| a.correlation_id = big.clone()),
            ),
            ("source", Box::new(|a| a.source = big.clone())),
            ("betti", Box::new(|a| a.betti = vec![1; caps::BETTI + 1])),
            (
                "signature",
                Box::new(|a| a.signature = vec![0.5; caps::SIGNATURE + 1]),
            ),
            (
                "tags",
                Box::new(|a| a.tags = vec!["t".into(); caps::LIST_ITEMS + 1]),
            ),
            ("a tag", Box::new(|a| a.tags = vec![big.clone()])),
            (
                "entities",
                Box::new(|a| a.entities = vec!["e".into(); caps::LIST_ITEMS + 1]),
            ),
            ("an entity", Box::new(|a| a.entities = vec![big.clone()])),
            (
                "an attribute key",
                Box::new(|a| {
                    a.attributes.insert(big.clone(), "v".into());
                }),
            ),
            (
                "an attribute value",
                Box::new(|a| {
                    a.attributes
                        .insert("k".into(), "v".repeat(caps::ATTRIBUTE_VALUE_BYTES + 1));
                }),
            ),
            (
                "attributes",
                Box::new(|a| {
                    a.attributes = (0..=caps::LIST_ITEMS)
                        .map(|i| (i.to_string(), String::new()))
                        .collect();
                }),
            ),
        ];
        for (field, grow) in cases {
            let mut a = anomaly();
            grow(&mut a);
            let error = check(&a).unwrap_err();
            assert_eq!(error.code(), "field_too_large", "{field}");
            assert!(error.to_string().starts_with(field), "{field}: {error}");
        }
        let mut a = anomaly();
        a.betti = vec![1, i32::MAX];
        assert_eq!(
            check(&a).unwrap_err().to_string(),
            "betti number 1 is 2147483647: a count of features must be in [0, 1000000]"
        );
        a.betti = vec![-1];
        assert_eq!(check(&a).unwrap_err().code(), "betti_out_of_range");
        // Exactly at the caps is fine.
        let mut a = anomaly();
        a.anomaly_id = "x".repeat(caps::ID_BYTES);
        a.betti = vec![1; caps::BETTI];
        assert_eq!(check(&a), Ok(()));
    }

    #[test]
    fn an_essential_feature_with_infinite_death_is_valid() {
        let mut a = anomaly();
        a.diagram[0].death = f64::INFINITY;
        assert_eq!(check(&a), Ok(()));
    }
}
