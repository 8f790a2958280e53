//! `patterns fit`: prototypes, metric, radii and calibration from a labelled dataset.
//!
//! 1. Embed every example ([`super::embedding`]).
//! 2. Learn a diagonal metric: each coordinate is divided by its pooled within-pattern spread and weighted
//!    by its Fisher relevance `between / (between + within)`, so coordinates that separate patterns count and
//!    coordinates that only vary within a pattern (scale, noise, diagram size, when they do) fade out.
//! 3. Keep a bounded kNN memory per pattern: every example when a pattern has at most `max_prototypes`,
//!    otherwise that many k-medoids, so a pattern with several shapes keeps one prototype per shape.
//! 4. Leave-one-out over the training set gives honest distances: the temperature is their median, a
//!    pattern's radius is 2× the 99th percentile of its examples' distance to their own pattern, and the
//!    confidence calibration is an isotonic fit of correctness against raw confidence.
//! 5. Steps 2-4 run for a small grid of relevance exponents and neighbour counts; the best leave-one-out
//!    accuracy on the training set wins. Nothing is tuned on the data being evaluated.
//!
//! Pattern metadata (tags, capabilities, workflows) comes from the base library; names only in the data
//! become new patterns triaged by an Analyst; base patterns absent from the data are left out unless
//! `keep_unseen` asks to keep them with their old prototypes.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::config::SemanticConfig;
use super::dataset::LabelledAnomaly;
use super::diagram::clean;
use super::embedding::{embed, EMBED_DIM};
use super::learning::new_pattern;
use super::matcher::{Compiled, Point};
use super::patterns::{from_points, Calibration, Metric, PatternLibrary};

/// Fit options.
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Bound on prototypes per pattern.
    pub max_prototypes: usize,
    /// Seed for k-medoids initialization.
    pub seed: u64,
    /// Keep base patterns that have no example in the data (with their old prototypes). Off by default:
    /// a pattern nobody labelled would otherwise compete, unmeasured, with the ones that were fitted.
    pub keep_unseen: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            max_prototypes: 32,
            seed: 7,
            keep_unseen: false,
        }
    }
}

/// What fit did, per pattern: (name, examples, prototypes, radius), and the leave-one-out accuracy.
#[derive(Debug, Clone)]
pub struct FitSummary {
    pub patterns: Vec<(String, usize, usize, f64)>,
    pub new_patterns: Vec<String>,
    pub loo_accuracy: f64,
}

fn sq(a: &Point, b: &Point) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum()
}

/// k-medoids (k-means++ seeding, then alternate assignment and medoid update); returns member indices.
fn k_medoids(points: &[Point], k: usize, rng: &mut SmallRng) -> Vec<usize> {
    let n = points.len();
    if n <= k {
        return (0..n).collect();
    }
    let mut medoids = vec![rng.random_range(0..n)];
    let mut near: Vec<f64> = points.iter().map(|p| sq(p, &points[medoids[0]])).collect();
    while medoids.len() < k {
        let total: f64 = near.iter().sum();
        let mut pick = rng.random::<f64>() * total;
        let next = (0..n)
            .find(|&i| {
                pick -= near[i];
                pick <= 0.0 && !medoids.contains(&i)
            })
            .unwrap_or_else(|| (0..n).find(|i| !medoids.contains(i)).expect("n > k"));
        medoids.push(next);
        for i in 0..n {
            near[i] = near[i].min(sq(&points[i], &points[next]));
        }
    }
    for _ in 0..20 {
        let assign: Vec<usize> = (0..n)
            .map(|i| {
                (0..k)
                    .min_by(|&a, &b| {
                        sq(&points[i], &points[medoids[a]])
                            .total_cmp(&sq(&points[i], &points[medoids[b]]))
                    })
                    .unwrap_or(0)
            })
            .collect();
        let mut changed = false;
        for (c, m) in medoids.iter_mut().enumerate() {
            let members: Vec<usize> = (0..n).filter(|&i| assign[i] == c).collect();
            let cost = |j: usize| {
                members
                    .iter()
                    .map(|&i| sq(&points[i], &points[j]).sqrt())
                    .sum::<f64>()
            };
            if let Some(best) = members
                .iter()
                .copied()
                .min_by(|&a, &b| cost(a).total_cmp(&cost(b)))
            {
                if best != *m {
                    *m = best;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    medoids
}

fn learn_metric(x: &[[f64; EMBED_DIM]], labels: &[usize], classes: usize, power: f64) -> Metric {
    let n = x.len().max(1) as f64;
    let mut center = vec![0.0; EMBED_DIM];
    let mut means = vec![[0.0; EMBED_DIM]; classes];
    let mut counts = vec![0.0; classes];
    for (v, &c) in x.iter().zip(labels) {
        counts[c] += 1.0;
        for f in 0..EMBED_DIM {
            center[f] += v[f] / n;
            means[c][f] += v[f];
        }
    }
    for (mean, count) in means.iter_mut().zip(&counts) {
        for m in mean.iter_mut() {
            *m /= f64::max(*count, 1.0);
        }
    }
    let scale = (0..EMBED_DIM)
        .map(|f| {
            let within: f64 = x
                .iter()
                .zip(labels)
                .map(|(v, &c)| (v[f] - means[c][f]).powi(2))
                .sum::<f64>()
                / n;
            let between: f64 = (0..classes)
                .map(|c| counts[c] * (means[c][f] - center[f]).powi(2))
                .sum::<f64>()
                / n;
            let total = within + between;
            if total <= 1e-12 {
                return 0.0;
            }
            // The floor keeps a coordinate that happens to be constant within each pattern from dominating.
            (between / total).powf(power) / (within + 0.01 * total).sqrt()
        })
        .collect();
    Metric {
        center,
        scale,
        temperature: 1.0,
        neighbors: 1,
    }
}

/// Pool-adjacent-violators on (raw, correct) pairs, compressed to at most 20 knots.
fn isotonic(mut pairs: Vec<(f64, f64)>) -> Calibration {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut blocks: Vec<(f64, f64, f64)> = Vec::new(); // (sum raw, sum y, count)
    for (r, y) in pairs {
        blocks.push((r, y, 1.0));
        while blocks.len() > 1 {
            let (a, b) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);
            if a.1 / a.2 < b.1 / b.2 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("len > 1") = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
        }
    }
    let step = blocks.len().div_ceil(20).max(1);
    let knots: Vec<_> = blocks
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i + 1 == blocks.len())
        .map(|(_, b)| (b.0 / b.2, b.1 / b.2))
        .collect();
    Calibration {
        raw: knots.iter().map(|k| k.0).collect(),
        calibrated: knots.iter().map(|k| k.1).collect(),
    }
}

/// Relevance exponents and neighbour counts that fit chooses between, by leave-one-out accuracy on the
/// training set: a higher exponent silences weakly relevant coordinates harder; more neighbours smooth
/// noisy patterns.
const POWERS: [f64; 3] = [0.5, 1.0, 2.0];
const NEIGHBORS: [usize; 2] = [1, 3];

/// Everything fit derives from the examples once, whatever the metric.
struct Prepared<'a> {
    examples: Vec<&'a LabelledAnomaly>,
    labels: Vec<usize>,
    raw: Vec<[f64; EMBED_DIM]>,
}

/// Builds a library for one metric choice; returns it with its leave-one-out accuracy and per-pattern
/// example counts.
fn build(
    base: &PatternLibrary,
    data: &Prepared,
    power: f64,
    neighbors: usize,
    opts: &FitOptions,
    cfg: &SemanticConfig,
) -> (PatternLibrary, f64, Vec<usize>) {
    let mut library = base.clone();
    let mut metric = learn_metric(&data.raw, &data.labels, library.patterns.len(), power);
    metric.neighbors = neighbors;
    library.metric = Some(metric);
    library.calibration = None;
    let transformer = Compiled::new(library.clone());
    let points: Vec<Point> = data
        .raw
        .iter()
        .map(|r| transformer.transform(&r.map(|v| v as f32)))
        .collect();
    let mut rng = SmallRng::seed_from_u64(opts.seed);
    // Which example each prototype came from, to leave it out when scoring that example.
    let mut source_of: Vec<usize> = Vec::new();
    let mut counts = vec![0usize; library.patterns.len()];
    for (pi, pattern) in library.patterns.iter_mut().enumerate() {
        let members: Vec<usize> = (0..data.examples.len())
            .filter(|&i| data.labels[i] == pi)
            .collect();
        counts[pi] = members.len();
        if members.is_empty() {
            source_of.extend(std::iter::repeat_n(usize::MAX, pattern.prototypes.len()));
            continue;
        }
        let pts: Vec<Point> = members.iter().map(|&i| points[i]).collect();
        let chosen = k_medoids(&pts, opts.max_prototypes.max(1), &mut rng);
        pattern.prototypes = chosen
            .iter()
            .map(|&j| from_points(&data.examples[members[j]].anomaly.diagram))
            .collect();
        source_of.extend(chosen.iter().map(|&j| members[j]));
        pattern.radius = None;
    }
    let compiled = Compiled::new(library.clone());
    let skip = |i: usize| source_of.iter().position(|&s| s == i);
    // Leave-one-out distances: temperature and radii first, then raw confidences for calibration.
    let mut own: Vec<Vec<f64>> = vec![Vec::new(); library.patterns.len()];
    let mut best = Vec::with_capacity(points.len());
    for (i, u) in points.iter().enumerate() {
        let d = compiled.pattern_distances(u, skip(i));
        let l = data.labels[i];
        if d[l].0.is_finite() {
            own[l].push(d[l].0);
        }
        best.push(d.iter().map(|x| x.0).fold(f64::INFINITY, f64::min));
    }
    best.retain(|x| x.is_finite());
    best.sort_by(f64::total_cmp);
    let temperature = best
        .get(best.len() / 2)
        .copied()
        .filter(|t| *t > 0.0)
        .unwrap_or(1.0);
    library.metric.as_mut().expect("set above").temperature = temperature;
    for (pi, d) in own.iter_mut().enumerate() {
        d.sort_by(f64::total_cmp);
        if let Some(&q) = d.get(((d.len() as f64) * 0.99) as usize).or(d.last()) {
            // Generous on purpose: a false `unknown` costs an Analyst's time on every such anomaly.
            library.patterns[pi].radius = Some((2.0 * q).max(temperature));
        }
    }
    let compiled = Compiled::new(library.clone());
    let wide = super::config::MatcherConfig {
        radius_factor: f64::MAX,
        ..cfg.matcher.clone()
    };
    let mut pairs = Vec::with_capacity(points.len());
    let mut correct = 0usize;
    for (i, u) in points.iter().enumerate() {
        let m = compiled.match_point(u, &data.examples[i].anomaly.tags, None, &wide, skip(i));
        let ok = m.best == Some(data.labels[i]);
        correct += usize::from(ok);
        pairs.push((m.raw_confidence, if ok { 1.0 } else { 0.0 }));
    }
    if !pairs.is_empty() {
        library.calibration = Some(isotonic(pairs));
    }
    (library, correct as f64 / points.len().max(1) as f64, counts)
}

pub fn fit(
    examples: &[LabelledAnomaly],
    base: &PatternLibrary,
    opts: &FitOptions,
    cfg: &SemanticConfig,
) -> (PatternLibrary, FitSummary) {
    let mut base = base.clone();
    let mut new_patterns = Vec::new();
    for ex in examples {
        let name = &ex.label.pattern;
        if base.pattern(name).is_none() && name != super::patterns::UNKNOWN {
            base.patterns.push(new_pattern(name, &ex.anomaly.tags));
            new_patterns.push(name.clone());
        }
    }
    if !opts.keep_unseen {
        base.patterns
            .retain(|p| examples.iter().any(|e| e.label.pattern == p.name));
    }
    base.version += 1;
    let examples: Vec<&LabelledAnomaly> = examples
        .iter()
        .filter(|e| base.pattern(&e.label.pattern).is_some())
        .collect();
    let index = |name: &str| {
        base.patterns
            .iter()
            .position(|p| p.name == name)
            .expect("added above")
    };
    let data = Prepared {
        labels: examples.iter().map(|e| index(&e.label.pattern)).collect(),
        raw: examples
            .iter()
            .map(|e| embed(&clean(&e.anomaly.diagram)).map(f64::from))
            .collect(),
        examples,
    };
    let mut chosen: Option<(PatternLibrary, f64, Vec<usize>)> = None;
    for &neighbors in &NEIGHBORS {
        for &power in &POWERS {
            let candidate = build(&base, &data, power, neighbors, opts, cfg);
            // Strictly better only: ties keep the simpler, earlier choice.
            if chosen.as_ref().is_none_or(|c| candidate.1 > c.1) {
                chosen = Some(candidate);
            }
        }
    }
    let (library, loo_accuracy, counts) = chosen.expect("the grid is not empty");
    let summary = FitSummary {
        patterns: library
            .patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    p.name.clone(),
                    counts[i],
                    p.prototypes.len(),
                    p.radius.unwrap_or(f64::NAN),
                )
            })
            .collect(),
        new_patterns,
        loo_accuracy,
    };
    (library, summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_is_monotone_and_averages_violators() {
        let c = isotonic(vec![(0.1, 1.0), (0.2, 0.0), (0.5, 1.0), (0.9, 1.0)]);
        assert!(c.calibrated.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(c.calibrated[0], 0.5, "the first two pool to their mean");
    }

    #[test]
    fn k_medoids_picks_one_member_per_cluster() {
        let mut pts = Vec::new();
        for c in [0.0f32, 10.0, 20.0] {
            for j in 0..5 {
                let mut p = [0f32; super::super::matcher::PADDED];
                p[0] = c + j as f32 * 0.1;
                pts.push(p);
            }
        }
        let mut m = k_medoids(&pts, 3, &mut SmallRng::seed_from_u64(1));
        m.sort();
        let clusters: Vec<usize> = m.iter().map(|&i| i / 5).collect();
        assert_eq!(clusters, vec![0, 1, 2]);
    }
}
