//! Urgency in [0, 1]: severity and detector score, amplified by topological departure from the source's
//! baseline and decayed with event age; the parts are kept for the explanation.
//!
//! Urgency is amplified by how far the anomaly's topology departs from its source's baseline. The baseline
//! is the source's `tda.context` row when the table has one; otherwise a running per-source estimate (an
//! exponentially weighted mean of entropy, total persistence and Betti numbers) that this module keeps. The
//! running estimate is the engine's only per-anomaly state: it is sharded behind mutexes so concurrent
//! partitions rarely contend, and bounded in size.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::config::UrgencyConfig;
use super::diagram::NDIM;
use super::features::Features;
use super::sliced_wasserstein::SlicedWasserstein;
use crate::model::{Severity, TdaAnomaly, TdaContext};

/// Where the baseline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineSource {
    Context,
    Running,
    /// The running estimate has seen fewer than `baseline_min_samples` anomalies: no amplification.
    WarmingUp,
}

/// Departure from the baseline and its parts (each in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Departure {
    pub value: f64,
    pub entropy: f64,
    pub persistence: f64,
    pub betti: f64,
    pub diagram: f64,
    pub source: BaselineSource,
}

/// Urgency and its parts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Urgency {
    pub value: f64,
    /// Weighted severity and score, before amplification and decay.
    pub base: f64,
    pub severity: f64,
    pub departure: Departure,
    /// `1 + amplification × departure`.
    pub amplification: f64,
    /// Multiplier from event age, in [decay_floor, 1].
    pub decay: f64,
    pub age_ms: i64,
}

pub fn severity_value(s: Severity) -> f64 {
    match s {
        Severity::Low => 0.25,
        Severity::Medium => 0.5,
        Severity::High => 0.75,
        Severity::Critical => 1.0,
    }
}

#[derive(Debug, Clone, Copy)]
struct Running {
    n: u32,
    entropy: f64,
    persistence: f64,
    betti: [f64; NDIM],
}

/// Running per-source baselines for sources with no `tda.context` row.
pub struct Baselines {
    shards: Vec<Mutex<HashMap<String, Running>>>,
    hasher: RandomState,
    per_shard: usize,
}

const SHARDS: usize = 16;

impl Baselines {
    pub fn new(max_sources: usize) -> Self {
        Baselines {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_sources.div_ceil(SHARDS).max(1),
        }
    }

    /// Returns the baseline before this anomaly, then folds the anomaly in.
    fn observe(&self, source: &str, now: Running, alpha: f64) -> Option<Running> {
        let shard = &self.shards[(self.hasher.hash_one(source) as usize) % SHARDS];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = map.get_mut(source) {
            let before = *r;
            r.n = r.n.saturating_add(1);
            r.entropy += alpha * (now.entropy - r.entropy);
            r.persistence += alpha * (now.persistence - r.persistence);
            for k in 0..NDIM {
                r.betti[k] += alpha * (now.betti[k] - r.betti[k]);
            }
            return Some(before);
        }
        if map.len() >= self.per_shard {
            // Bounded memory matters more than which idle source is forgotten.
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(source.to_string(), Running { n: 1, ..now });
        None
    }
}

fn betti_of(a: &TdaAnomaly, f: &Features) -> [f64; NDIM] {
    if a.betti.is_empty() {
        return f.diagram_betti.map(f64::from);
    }
    std::array::from_fn(|k| {
        let tail = if k + 1 == NDIM {
            &a.betti[k.min(a.betti.len())..]
        } else {
            a.betti.get(k..=k).unwrap_or(&[])
        };
        tail.iter().map(|&b| b.max(0) as f64).sum()
    })
}

fn relative_change(now: f64, base: f64) -> f64 {
    let denom = now.abs().max(base.abs());
    if denom > 0.0 {
        ((now - base).abs() / denom).min(1.0)
    } else {
        0.0
    }
}

fn betti_change(now: &[f64; NDIM], base: &[f64; NDIM]) -> f64 {
    let l1: f64 = now.iter().zip(base).map(|(a, b)| (a - b).abs()).sum();
    1.0 - (-l1 / 2.0).exp()
}

/// Everything urgency needs besides the anomaly itself.
pub struct UrgencyInputs<'a> {
    pub context: Option<&'a TdaContext>,
    pub baselines: &'a Baselines,
    pub sw: &'a SlicedWasserstein,
    pub now_ms: i64,
}

pub fn urgency(f: &Features, a: &TdaAnomaly, inp: &UrgencyInputs, cfg: &UrgencyConfig) -> Urgency {
    let w = &cfg.weights;
    let severity = severity_value(a.severity);
    let score = if a.anomaly_score.is_finite() {
        a.anomaly_score.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let base = (w.severity * severity + w.score * score) / (w.severity + w.score);
    let betti = betti_of(a, f);
    let dw = &cfg.departure;
    let mut dep = Departure {
        value: 0.0,
        entropy: 0.0,
        persistence: 0.0,
        betti: 0.0,
        diagram: 0.0,
        source: BaselineSource::WarmingUp,
    };
    let now = Running {
        n: 1,
        entropy: f.entropy,
        persistence: f.total_persistence,
        betti,
    };
    match inp.context {
        Some(ctx) => {
            let base_betti: [f64; NDIM] = std::array::from_fn(|k| {
                ctx.baseline_betti.get(k).map_or(0.0, |&b| b.max(0) as f64)
            });
            dep.source = BaselineSource::Context;
            dep.entropy = (f.entropy - ctx.baseline_entropy).abs().min(1.0);
            dep.persistence = relative_change(f.total_persistence, ctx.baseline_total_persistence);
            dep.betti = betti_change(&betti, &base_betti);
            if dw.diagram > 0.0 && !ctx.baseline_diagram.is_empty() {
                let d = inp.sw.distance(&a.diagram, &ctx.baseline_diagram);
                let scale = ctx.baseline_total_persistence.max(f.total_persistence);
                dep.diagram = if scale > 0.0 {
                    (d / scale).min(1.0)
                } else {
                    0.0
                };
            }
        }
        None => {
            if let Some(r) = inp.baselines.observe(&a.source, now, cfg.baseline_alpha) {
                if r.n >= cfg.baseline_min_samples {
                    dep.source = BaselineSource::Running;
                    dep.entropy = (f.entropy - r.entropy).abs().min(1.0);
                    dep.persistence = relative_change(f.total_persistence, r.persistence);
                    dep.betti = betti_change(&betti, &r.betti);
                }
            }
        }
    }
    if dep.source != BaselineSource::WarmingUp {
        let total = dw.entropy + dw.persistence + dw.betti + dw.diagram;
        if total > 0.0 {
            dep.value = (dw.entropy * dep.entropy
                + dw.persistence * dep.persistence
                + dw.betti * dep.betti
                + dw.diagram * dep.diagram)
                / total;
        }
    }
    let amplification = 1.0 + cfg.amplification * dep.value;
    let age_ms = (inp.now_ms - a.detected_at).max(0);
    let decay = 0.5f64
        .powf(age_ms as f64 / cfg.half_life_ms as f64)
        .max(cfg.decay_floor);
    Urgency {
        value: (base * amplification).min(1.0) * decay,
        base,
        severity,
        departure: dep,
        amplification,
        decay,
        age_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::SemanticConfig;
    use super::super::diagram::clean;
    use super::*;

    use super::super::fixtures::{anomaly, loop_diagram};

    #[test]
    fn urgency_amplified_by_departure_and_decays_with_age() {
        let cfg = SemanticConfig::default();
        let (bl, sw) = (Baselines::new(10), SlicedWasserstein::new(4));
        let a = anomaly(loop_diagram(1.0), Severity::High);
        let f = Features::compute(&clean(&a.diagram), &a.betti, &cfg.features);
        let ctx = |tp: f64| TdaContext {
            source: "svc".into(),
            baseline_betti: vec![1, 1],
            baseline_diagram: vec![],
            baseline_entropy: f.entropy,
            baseline_total_persistence: tp,
            pattern_confidence: HashMap::new(),
            attributes: HashMap::new(),
            updated_at: 0,
        };
        let same = ctx(f.total_persistence);
        let u0 = urgency(
            &f,
            &a,
            &UrgencyInputs {
                context: Some(&same),
                baselines: &bl,
                sw: &sw,
                now_ms: 1_000,
            },
            &cfg.urgency,
        );
        assert_eq!(u0.departure.value, 0.0);
        assert!((u0.value - (0.6 * 0.75 + 0.4 * 0.5)).abs() < 1e-12);
        let moved = ctx(f.total_persistence * 4.0);
        let u1 = urgency(
            &f,
            &a,
            &UrgencyInputs {
                context: Some(&moved),
                baselines: &bl,
                sw: &sw,
                now_ms: 1_000,
            },
            &cfg.urgency,
        );
        assert!(u1.value > u0.value && u1.departure.persistence == 0.75);
        let old = UrgencyInputs {
            context: Some(&same),
            baselines: &bl,
            sw: &sw,
            now_ms: 1_000 + cfg.urgency.half_life_ms,
        };
        assert!((urgency(&f, &a, &old, &cfg.urgency).decay - 0.5).abs() < 1e-12);
    }

    #[test]
    fn running_baseline_warms_up_then_amplifies() {
        let cfg = SemanticConfig::default();
        let (bl, sw) = (Baselines::new(10), SlicedWasserstein::new(4));
        let inp = UrgencyInputs {
            context: None,
            baselines: &bl,
            sw: &sw,
            now_ms: 1_000,
        };
        let normal = anomaly(loop_diagram(1.0), Severity::Medium);
        let f = Features::compute(&clean(&normal.diagram), &normal.betti, &cfg.features);
        for _ in 0..cfg.urgency.baseline_min_samples + 1 {
            let u = urgency(&f, &normal, &inp, &cfg.urgency);
            assert_eq!(u.departure.value, 0.0);
        }
        let odd = anomaly(loop_diagram(9.0), Severity::Medium);
        let g = Features::compute(&clean(&odd.diagram), &odd.betti, &cfg.features);
        let u = urgency(&g, &odd, &inp, &cfg.urgency);
        assert_eq!(u.departure.source, BaselineSource::Running);
        assert!(u.departure.persistence > 0.8);
    }
}
