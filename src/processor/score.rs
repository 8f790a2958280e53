//! Urgency and complexity, first version: severity, detector score, and departure from the
//! source's baseline persistence. The semantic engine replaces the parts, not the interface.

use crate::model::{Severity, TdaAnomaly};

use super::enrich::Enriched;

/// The scores of one anomaly, with the parts that produced them (for the explanation).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    pub urgency: f64,
    pub complexity: f64,
    /// How far total persistence departs from the baseline, as a multiplier >= 1.
    pub amplification: f64,
}

pub fn severity_weight(severity: Severity) -> f64 {
    match severity {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    }
}

/// Sum of finite lifetimes; an essential (infinite) feature counts as lifetime 0 here since it
/// says nothing about change.
pub fn total_persistence(anomaly: &TdaAnomaly) -> f64 {
    anomaly.diagram.iter().map(|p| p.death - p.birth).filter(|l| l.is_finite()).sum()
}

pub fn score(input: &Enriched) -> Scores {
    let a = &input.anomaly;
    let base = 0.6 * severity_weight(a.severity) + 0.4 * a.anomaly_score;
    let amplification = match &input.context {
        Some(ctx) if ctx.baseline_total_persistence > 0.0 => {
            let ratio = total_persistence(a).max(1e-9) / ctx.baseline_total_persistence;
            1.0 + 0.5 * ratio.ln().abs().min(1.0)
        }
        _ => 1.0,
    };
    let saturate = |x: f64, at: f64| (x / at).min(1.0);
    let complexity = 0.4 * saturate(a.diagram.len() as f64, 64.0)
        + 0.3 * saturate(a.entities.len() as f64, 5.0)
        + 0.3 * saturate(a.tags.len() as f64, 5.0);
    Scores { urgency: (base * amplification).min(1.0), complexity, amplification }
}
