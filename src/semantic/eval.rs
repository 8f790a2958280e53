//! `eval`: pattern accuracy, route accuracy, a confusion matrix and calibration on a labelled dataset.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::dataset::LabelledAnomaly;
use super::engine::Engine;
use super::patterns::UNKNOWN;
use crate::model::RoutingFeedback;

/// One confidence bucket: how often the engine was right when it said this much.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub lo: f64,
    pub hi: f64,
    pub n: u64,
    pub mean_confidence: f64,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub n: u64,
    pub pattern_accuracy: f64,
    /// Share of examples with a route label whose agent type, coordination and layer all match; null when
    /// no example has a route label.
    pub route_accuracy: Option<f64>,
    pub route_n: u64,
    /// Per route field: agent_type, coordination, layer accuracy.
    pub route_field_accuracy: Option<[f64; 3]>,
    /// Per route part (`agent_type`, `coordination`, `layer`): expected → chosen → count, over the
    /// examples with a route label.
    pub route_confusion: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    pub unknown: u64,
    /// truth → predicted → count (predicted `unknown` when nothing matched).
    pub confusion: BTreeMap<String, BTreeMap<String, u64>>,
    pub calibration: Vec<Bucket>,
}

/// Options for [`evaluate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// After assessing each example, feed its label back as confirmed feedback (prequential evaluation).
    pub feedback: bool,
}

/// Assesses every example in order (each at its own `detected_at`, without context) and scores it.
/// Also returns whether each example's pattern was right, in order.
pub fn evaluate(
    engine: &Engine,
    examples: &[LabelledAnomaly],
    opts: EvalOptions,
) -> (EvalReport, Vec<bool>) {
    let mut confusion: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut buckets = vec![(0u64, 0.0f64, 0u64); 10];
    let (mut right, mut unknown, mut route_n, mut route_right) = (0u64, 0u64, 0u64, 0u64);
    let mut fields = [0u64; 3];
    let mut route_confusion: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>> =
        BTreeMap::new();
    let mut outcomes = Vec::with_capacity(examples.len());
    for ex in examples {
        let a = engine.assess(&ex.anomaly, None, ex.anomaly.detected_at);
        let predicted = a.pattern_id.as_deref().unwrap_or(UNKNOWN);
        let ok = predicted == ex.label.pattern;
        outcomes.push(ok);
        right += u64::from(ok);
        unknown += u64::from(a.pattern_id.is_none());
        *confusion
            .entry(ex.label.pattern.clone())
            .or_default()
            .entry(predicted.to_string())
            .or_default() += 1;
        let b = &mut buckets[((a.confidence * 10.0) as usize).min(9)];
        *b = (b.0 + 1, b.1 + a.confidence, b.2 + u64::from(ok));
        if let Some(r) = &ex.label.route {
            route_n += 1;
            let hits = [
                r.agent_type == a.route.agent_type,
                r.coordination == a.route.coordination,
                r.layer == a.route.layer,
            ];
            for (f, h) in fields.iter_mut().zip(hits) {
                *f += u64::from(h);
            }
            route_right += u64::from(hits.iter().all(|&h| h));
            let parts = [
                (
                    "agent_type",
                    format!("{:?}", r.agent_type),
                    format!("{:?}", a.route.agent_type),
                ),
                (
                    "coordination",
                    format!("{:?}", r.coordination),
                    format!("{:?}", a.route.coordination),
                ),
                (
                    "layer",
                    format!("{:?}", r.layer),
                    format!("{:?}", a.route.layer),
                ),
            ];
            for (part, expected, chosen) in parts {
                *route_confusion
                    .entry(part.to_string())
                    .or_default()
                    .entry(expected)
                    .or_default()
                    .entry(chosen)
                    .or_default() += 1;
            }
        }
        if opts.feedback {
            engine.on_feedback(&RoutingFeedback {
                anomaly_id: ex.anomaly.anomaly_id.clone(),
                pattern: Some(ex.label.pattern.clone()),
                agent_type: ex.label.route.map(|r| r.agent_type),
                coordination: ex.label.route.map(|r| r.coordination),
                layer: ex.label.route.map(|r| r.layer),
                anomaly: Some(ex.anomaly.clone()),
                confirmed_by: "eval".to_string(),
                at: ex.anomaly.detected_at,
            });
        }
    }
    let n = examples.len() as u64;
    let ratio = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let report = EvalReport {
        n,
        pattern_accuracy: ratio(right, n),
        route_accuracy: (route_n > 0).then(|| ratio(route_right, route_n)),
        route_n,
        route_field_accuracy: (route_n > 0).then(|| fields.map(|f| ratio(f, route_n))),
        unknown,
        confusion,
        route_confusion,
        calibration: buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| b.0 > 0)
            .map(|(i, b)| Bucket {
                lo: i as f64 / 10.0,
                hi: (i + 1) as f64 / 10.0,
                n: b.0,
                mean_confidence: b.1 / b.0 as f64,
                accuracy: ratio(b.2, b.0),
            })
            .collect(),
    };
    (report, outcomes)
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "examples:          {}", self.n)?;
        writeln!(
            f,
            "pattern accuracy:  {:.2}%  ({} unknown)",
            100.0 * self.pattern_accuracy,
            self.unknown
        )?;
        match (self.route_accuracy, self.route_field_accuracy) {
            (Some(r), Some([t, c, l])) => writeln!(
                f,
                "route accuracy:    {:.2}%  over {} labelled routes (agent type {:.1}%, coordination {:.1}%, layer {:.1}%)",
                100.0 * r, self.route_n, 100.0 * t, 100.0 * c, 100.0 * l
            )?,
            _ => writeln!(f, "route accuracy:    n/a (no route labels)")?,
        }
        writeln!(f, "\nconfusion (rows: truth, columns: predicted)")?;
        matrix(f, &self.confusion)?;
        for (part, m) in &self.route_confusion {
            writeln!(f, "\nroute {part} (rows: expected, columns: chosen)")?;
            matrix(f, m)?;
        }
        writeln!(
            f,
            "\ncalibration (confidence bucket: n, mean confidence, accuracy)"
        )?;
        for b in &self.calibration {
            writeln!(
                f,
                "  [{:.1}, {:.1}): {:6}  {:.3}  {:.3}",
                b.lo, b.hi, b.n, b.mean_confidence, b.accuracy
            )?;
        }
        Ok(())
    }
}

/// A confusion matrix as a table: one row per truth, one column per value predicted anywhere.
fn matrix(f: &mut fmt::Formatter<'_>, m: &BTreeMap<String, BTreeMap<String, u64>>) -> fmt::Result {
    let mut predicted: Vec<&String> = m.values().flat_map(|row| row.keys()).collect();
    predicted.sort();
    predicted.dedup();
    let w = m
        .keys()
        .chain(predicted.iter().copied())
        .map(|s| s.len())
        .max()
        .unwrap_or(8)
        .max(6);
    write!(f, "{:w$}", "")?;
    for p in &predicted {
        write!(f, " {p:>w$}")?;
    }
    writeln!(f)?;
    for (truth, row) in m {
        write!(f, "{truth:w$}")?;
        for p in &predicted {
            write!(f, " {:>w$}", row.get(*p).copied().unwrap_or(0))?;
        }
        writeln!(f)?;
    }
    Ok(())
}
