//! Matching an anomaly's diagram against the pattern library: nearest prototype per pattern under the
//! learned metric, tag hints and source priors as adjustments, a softmax over patterns, then the learned
//! isotonic calibration. Farther than a pattern's radius from everything means `unknown`.
//!
//! [`Compiled`] is the library's fast form: prototype embeddings already transformed by the metric and
//! padded to a multiple of 8 lanes, so a distance is a straight, auto-vectorized loop.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use super::config::MatcherConfig;
use super::diagram::clean;
use super::embedding::{embed, Embedding, EMBED_DIM};
use super::patterns::{to_points, Calibration, PatternLibrary, MAX_NEIGHBORS};

/// Embedding length padded to whole 8-lane chunks.
pub const PADDED: usize = EMBED_DIM.div_ceil(8) * 8;

/// A metric-transformed embedding.
pub type Point = [f32; PADDED];

/// The library compiled for matching. Immutable; learning builds a new one.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The source of truth this was compiled from.
    pub library: PatternLibrary,
    center: [f32; PADDED],
    scale: [f32; PADDED],
    temperature: f64,
    neighbors: usize,
    calibration: Option<Calibration>,
    /// Transformed prototypes, in pattern order.
    pub(crate) protos: Vec<Point>,
    /// (pattern index, prototype index within the pattern) of each entry of `protos`.
    pub(crate) owner: Vec<(u32, u32)>,
    /// Effective radius per pattern.
    pub radius: Vec<f64>,
    index: HashMap<String, usize>,
    /// Hashes of each pattern's tag hints: comparing an anomaly's few tag hashes against these is much
    /// cheaper than comparing strings against every pattern.
    hint_hashes: Vec<Vec<u64>>,
}

fn tag_hash(tag: &str) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(tag)
}

/// The outcome of one match.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchResult {
    /// Winning pattern index, or None for unknown.
    pub best: Option<usize>,
    /// The closest pattern, even when the result is unknown.
    pub nearest: usize,
    /// Adjusted distance to the nearest pattern, and that pattern's radius.
    pub distance: f64,
    pub radius: f64,
    /// Calibrated confidence of `best` (0 when unknown).
    pub confidence: f64,
    /// Uncalibrated softmax share of the nearest pattern.
    pub raw_confidence: f64,
    /// Second pattern and its share of the remaining confidence; for unknown, the nearest pattern.
    pub runner_up: Option<(usize, f64)>,
    /// Global index of the nearest prototype of the nearest pattern.
    pub nearest_proto: usize,
}

fn sq_dist(a: &Point, b: &Point) -> f32 {
    // Element-wise squares, then a pairwise tree sum: each stage is a plain lane-parallel loop over a
    // fixed-size array, which LLVM vectorizes (a single running sum would have to stay scalar).
    let mut s = [0f32; PADDED];
    for i in 0..PADDED {
        let d = a[i] - b[i];
        s[i] = d * d;
    }
    let mut width = PADDED / 2;
    while width >= 8 {
        for i in 0..width {
            s[i] += s[i + width];
        }
        width /= 2;
    }
    s[..width * 2].iter().sum()
}

impl Calibration {
    pub fn apply(&self, raw: f64) -> f64 {
        let (x, y) = (&self.raw, &self.calibrated);
        let i = x.partition_point(|&v| v < raw);
        if i == 0 {
            return y[0];
        }
        if i == x.len() {
            return y[x.len() - 1];
        }
        let t = if x[i] > x[i - 1] {
            (raw - x[i - 1]) / (x[i] - x[i - 1])
        } else {
            1.0
        };
        y[i - 1] + t * (y[i] - y[i - 1])
    }
}

impl Compiled {
    pub fn new(library: PatternLibrary) -> Self {
        let (mut center, mut scale) = ([0f32; PADDED], [0f32; PADDED]);
        scale[..EMBED_DIM].fill(1.0);
        let (mut temperature, mut neighbors) = (1.0, 1);
        if let Some(m) = &library.metric {
            neighbors = m.neighbors.clamp(1, MAX_NEIGHBORS);
            for i in 0..EMBED_DIM {
                center[i] = m.center[i] as f32;
                scale[i] = m.scale[i] as f32;
            }
            temperature = m.temperature;
        }
        let mut c = Compiled {
            center,
            scale,
            temperature,
            neighbors,
            calibration: library.calibration.clone(),
            protos: Vec::new(),
            owner: Vec::new(),
            radius: Vec::new(),
            index: HashMap::new(),
            hint_hashes: library
                .patterns
                .iter()
                .map(|p| p.tags.iter().map(|t| tag_hash(t)).collect())
                .collect(),
            library,
        };
        for (pi, p) in c.library.patterns.iter().enumerate() {
            c.index.insert(p.name.clone(), pi);
            for (j, proto) in p.prototypes.iter().enumerate() {
                let e = embed(&clean(&to_points(proto)));
                c.protos.push(c.transform(&e));
                c.owner.push((pi as u32, j as u32));
            }
        }
        let mut known: Vec<f64> = c.library.patterns.iter().filter_map(|p| p.radius).collect();
        known.sort_by(f64::total_cmp);
        let fallback = known
            .get(known.len() / 2)
            .copied()
            .unwrap_or(4.0 * temperature);
        c.radius = c
            .library
            .patterns
            .iter()
            .map(|p| p.radius.unwrap_or(fallback))
            .collect();
        c
    }

    pub fn version(&self) -> u64 {
        self.library.version
    }

    pub fn pattern_index(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn name(&self, pattern: usize) -> &str {
        &self.library.patterns[pattern].name
    }

    pub fn transform(&self, e: &Embedding) -> Point {
        let mut u = [0f32; PADDED];
        for i in 0..EMBED_DIM {
            u[i] = (e[i] - self.center[i]) * self.scale[i];
        }
        u
    }

    /// Distance from `u` to every pattern (the mean distance to its `neighbors` nearest prototypes, or to as
    /// many as it has), skipping prototype `skip` (leave-one-out), with the global index of the nearest
    /// prototype; `f64::INFINITY` for a pattern with no prototype left.
    pub fn pattern_distances(&self, u: &Point, skip: Option<usize>) -> Vec<(f64, usize)> {
        let k = self.neighbors;
        // Per pattern: the k smallest squared distances, ascending, and the nearest prototype.
        let mut best =
            vec![([f32::INFINITY; MAX_NEIGHBORS], usize::MAX); self.library.patterns.len()];
        for (i, proto) in self.protos.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            let d = sq_dist(u, proto);
            let (top, nearest) = &mut best[self.owner[i].0 as usize];
            if d < top[k - 1] {
                let mut j = k - 1;
                while j > 0 && top[j - 1] > d {
                    top[j] = top[j - 1];
                    j -= 1;
                }
                top[j] = d;
                if j == 0 {
                    *nearest = i;
                }
            }
        }
        best.into_iter()
            .map(|(top, nearest)| {
                let (mut sum, mut n) = (0.0, 0u32);
                for &d in top[..k].iter().filter(|d| d.is_finite()) {
                    sum += f64::from(d).sqrt();
                    n += 1;
                }
                (
                    if n > 0 {
                        sum / f64::from(n)
                    } else {
                        f64::INFINITY
                    },
                    nearest,
                )
            })
            .collect()
    }

    /// Matches a transformed embedding. `priors` maps pattern names to the source's prior confidence.
    pub fn match_point(
        &self,
        u: &Point,
        tags: &[String],
        priors: Option<&HashMap<String, f64>>,
        cfg: &MatcherConfig,
        skip: Option<usize>,
    ) -> MatchResult {
        let mut dists = self.pattern_distances(u, skip);
        let mut logits = Vec::with_capacity(dists.len());
        let tag_hashes: Vec<u64> = if cfg.tag_weight > 0.0 {
            tags.iter().map(|t| tag_hash(t)).collect()
        } else {
            Vec::new()
        };
        for (pi, (d, _)) in dists.iter_mut().enumerate() {
            let hints = &self.hint_hashes[pi];
            if !tag_hashes.is_empty() && !hints.is_empty() {
                let hits = tag_hashes.iter().filter(|t| hints.contains(t)).count();
                let overlap = (hits as f64 / tags.len().min(hints.len()) as f64).min(1.0);
                *d *= 1.0 - cfg.tag_weight * overlap;
            }
            let mut logit = -*d / self.temperature;
            if let Some(prior) = priors.filter(|_| cfg.prior_weight > 0.0) {
                let name = &self.library.patterns[pi].name;
                logit += cfg.prior_weight
                    * (prior.get(name).copied().unwrap_or(0.0).clamp(0.0, 1.0) + 0.01).ln();
            }
            logits.push(if logit.is_nan() {
                f64::NEG_INFINITY
            } else {
                logit
            });
        }
        let (mut first, mut second) = (0, usize::MAX);
        for i in 1..logits.len() {
            if logits[i] > logits[first] {
                second = first;
                first = i;
            } else if second == usize::MAX || logits[i] > logits[second] {
                second = i;
            }
        }
        let top = logits[first];
        let z: f64 = logits.iter().map(|l| (l - top).exp()).sum();
        let share = |i: usize| {
            if z > 0.0 && logits[i].is_finite() {
                (logits[i] - top).exp() / z
            } else {
                0.0
            }
        };
        let raw = if top.is_finite() { share(first) } else { 0.0 };
        let calibrated = self
            .calibration
            .as_ref()
            .map_or(raw, |c| c.apply(raw))
            .clamp(0.0, 1.0);
        let (distance, radius) = (dists[first].0, self.radius[first] * cfg.radius_factor);
        let known = distance <= radius;
        let runner_up = if !known {
            Some((first, calibrated))
        } else if second != usize::MAX {
            // Rescale the runner-up's share so best + runner-up never exceed 1 after calibration.
            let rest = if raw < 1.0 {
                (1.0 - calibrated) / (1.0 - raw)
            } else {
                0.0
            };
            Some((second, (share(second) * rest).clamp(0.0, 1.0)))
        } else {
            None
        };
        MatchResult {
            best: known.then_some(first),
            nearest: first,
            distance,
            radius,
            confidence: if known { calibrated } else { 0.0 },
            raw_confidence: raw,
            runner_up,
            nearest_proto: dists[first].1,
        }
    }

    pub fn match_embedding(
        &self,
        e: &Embedding,
        tags: &[String],
        priors: Option<&HashMap<String, f64>>,
        cfg: &MatcherConfig,
    ) -> MatchResult {
        self.match_point(&self.transform(e), tags, priors, cfg, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::patterns::{PatternLibrary, ProtoDiagram};

    fn lib_with(protos: Vec<(&str, ProtoDiagram)>) -> PatternLibrary {
        let mut lib = PatternLibrary::builtin();
        lib.metric = None;
        lib.calibration = None;
        let template = lib.patterns[0].clone();
        lib.patterns = protos
            .into_iter()
            .map(|(name, d)| {
                let mut p = template.clone();
                p.name = name.into();
                p.tags = vec![format!("{name}-tag")];
                p.radius = Some(2.0);
                p.prototypes = vec![d];
                p
            })
            .collect();
        lib
    }

    #[test]
    fn nearest_pattern_wins_and_far_is_unknown() {
        let lib = lib_with(vec![
            ("loop", vec![(0, 0.0, f64::INFINITY), (1, 0.1, 1.0)]),
            (
                "split",
                vec![(0, 0.0, f64::INFINITY), (0, 0.0, 1.0), (0, 0.0, 0.9)],
            ),
        ]);
        let c = Compiled::new(lib);
        let cfg = MatcherConfig::default();
        let e = embed(&clean(&to_points(&vec![
            (0, 0.0, f64::INFINITY),
            (1, 0.12, 1.1),
        ])));
        let m = c.match_embedding(&e, &[], None, &cfg);
        assert_eq!(m.best, Some(0));
        assert!(m.confidence > 0.5 && m.confidence <= 1.0);
        assert_eq!(m.runner_up.map(|r| r.0), Some(1));
        let far = embed(&clean(&to_points(&vec![
            (2, 0.0, 5.0),
            (2, 0.0, 4.0),
            (2, 1.0, 4.0),
        ])));
        let m = c.match_embedding(&far, &[], None, &CfgTight::cfg());
        assert_eq!(m.best, None);
        assert_eq!(m.confidence, 0.0);
    }

    struct CfgTight;
    impl CfgTight {
        fn cfg() -> MatcherConfig {
            MatcherConfig {
                radius_factor: 0.01,
                ..MatcherConfig::default()
            }
        }
    }

    #[test]
    fn tags_break_ties() {
        let d: ProtoDiagram = vec![(1, 0.0, 1.0)];
        let c = Compiled::new(lib_with(vec![("a", d.clone()), ("b", d.clone())]));
        let e = embed(&clean(&to_points(&vec![(1, 0.0, 1.2)])));
        let m = c.match_embedding(&e, &["b-tag".to_string()], None, &MatcherConfig::default());
        assert_eq!(m.best, Some(1));
    }

    #[test]
    fn calibration_interpolates_and_clamps() {
        let cal = Calibration {
            raw: vec![0.2, 0.6, 1.0],
            calibrated: vec![0.1, 0.5, 0.9],
        };
        assert_eq!(cal.apply(0.0), 0.1);
        assert!((cal.apply(0.4) - 0.3).abs() < 1e-12);
        assert_eq!(cal.apply(1.0), 0.9);
    }
}
