//! TDA features of one persistence diagram: lifetimes, total persistence, normalized persistent entropy,
//! significant features by dimension, and the Betti numbers implied by the diagram checked against the ones
//! the detector reported. Infinite and missing deaths follow the rules in [`super::diagram`].

use super::config::FeatureConfig;
use super::diagram::{Bar, CleanDiagram, NDIM};

/// Features of one homology dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DimFeatures {
    /// Finite points.
    pub count: u32,
    /// Points that never die.
    pub essential: u32,
    /// Sum of finite lifetimes.
    pub total_persistence: f64,
    /// Persistent entropy of the finite lifetimes divided by `ln(count)`, so it lies in [0, 1] whatever the
    /// diagram size (0 for fewer than two points).
    pub entropy: f64,
    /// Finite points whose lifetime is above the significance threshold.
    pub significant: u32,
    pub max_lifetime: f64,
}

/// Features of a whole diagram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub dims: [DimFeatures; NDIM],
    pub total_persistence: f64,
    /// Normalized persistent entropy over all finite points of all dimensions.
    pub entropy: f64,
    /// Significant finite points, all dimensions.
    pub significant: u32,
    pub max_lifetime: f64,
    /// The lifetime a finite point must exceed to be significant.
    pub threshold: f64,
    /// Betti numbers the diagram implies: essential plus significant points per dimension.
    pub diagram_betti: [u32; NDIM],
    /// Sum over dimensions of |reported betti - diagram betti|; 0 means the detector and diagram agree.
    pub betti_mismatch: u32,
    /// Malformed points dropped while cleaning.
    pub dropped: u32,
}

/// Persistent entropy of `lifetimes` (all > 0) normalized by `ln(n)`.
pub fn normalized_entropy(lifetimes: impl Iterator<Item = f64>) -> f64 {
    let mut acc = EntropyAcc::default();
    lifetimes.for_each(|l| acc.add(l));
    acc.normalized()
}

/// Accumulates what entropy needs in one pass: with `T = Σ l`, `−Σ (l/T) ln(l/T) = ln T − (Σ l ln l) / T`,
/// so each bar costs one logarithm however many groupings (per dimension, whole diagram) use it.
#[derive(Debug, Clone, Copy, Default)]
struct EntropyAcc {
    n: u32,
    total: f64,
    l_ln_l: f64,
}

impl EntropyAcc {
    fn add(&mut self, l: f64) {
        if l > 0.0 {
            self.add_with_ln(l, l * l.ln());
        }
    }
    fn add_with_ln(&mut self, l: f64, l_ln_l: f64) {
        self.n += 1;
        self.total += l;
        self.l_ln_l += l_ln_l;
    }
    fn merge(&mut self, o: &EntropyAcc) {
        self.n += o.n;
        self.total += o.total;
        self.l_ln_l += o.l_ln_l;
    }
    fn normalized(&self) -> f64 {
        if self.n < 2 || self.total <= 0.0 {
            return 0.0;
        }
        let h = self.total.ln() - self.l_ln_l / self.total;
        (h / f64::from(self.n).ln()).clamp(0.0, 1.0)
    }
}

impl Features {
    /// Computes the features; `betti` is what the detector reported (checked, never trusted).
    pub fn compute(diagram: &CleanDiagram, betti: &[i32], cfg: &FeatureConfig) -> Features {
        let max_lifetime = diagram
            .finite
            .iter()
            .flatten()
            .map(Bar::lifetime)
            .fold(0.0, f64::max);
        // Relative significance keeps the count scale-free; the absolute floor stops a diagram of pure noise
        // from calling its largest noise bar significant.
        let threshold = (cfg.significance_relative * max_lifetime).max(cfg.significance_absolute);
        let mut f = Features {
            max_lifetime,
            threshold,
            dropped: diagram.dropped,
            ..Features::default()
        };
        let mut all = EntropyAcc::default();
        for k in 0..NDIM {
            let mut acc = EntropyAcc::default();
            let (mut significant, mut max) = (0u32, 0.0f64);
            for b in &diagram.finite[k] {
                let l = b.lifetime();
                acc.add(l);
                significant += u32::from(l > threshold);
                max = max.max(l);
            }
            all.merge(&acc);
            let d = DimFeatures {
                count: diagram.finite[k].len() as u32,
                essential: diagram.essential[k],
                total_persistence: acc.total,
                entropy: acc.normalized(),
                significant,
                max_lifetime: max,
            };
            f.total_persistence += d.total_persistence;
            f.significant += d.significant;
            f.diagram_betti[k] = d.essential + d.significant;
            f.dims[k] = d;
        }
        f.entropy = all.normalized();
        let reported = |k: usize| -> u32 {
            // Reported dimensions above the top slot fold into it, as the diagram's do.
            if k + 1 == NDIM {
                betti.iter().skip(k).map(|&b| b.max(0) as u32).sum()
            } else {
                betti.get(k).map_or(0, |&b| b.max(0) as u32)
            }
        };
        f.betti_mismatch = (0..NDIM)
            .map(|k| reported(k).abs_diff(f.diagram_betti[k]))
            .sum();
        f
    }
}

#[cfg(test)]
mod tests {
    use super::super::diagram::clean;
    use super::*;
    use crate::model::PersistencePoint;
    use proptest::prelude::*;

    fn p(dimension: i32, birth: f64, death: f64) -> PersistencePoint {
        PersistencePoint {
            dimension,
            birth,
            death,
        }
    }

    fn cfg() -> FeatureConfig {
        FeatureConfig {
            significance_relative: 0.25,
            significance_absolute: 0.0,
        }
    }

    #[test]
    fn hand_computed_circle() {
        // One essential component, two noise components, one big loop.
        let d = clean(&[
            p(0, 0.0, f64::INFINITY),
            p(0, 0.0, 0.1),
            p(0, 0.0, 0.1),
            p(1, 0.2, 1.0),
        ]);
        let f = Features::compute(&d, &[1, 1], &cfg());
        assert!((f.total_persistence - 1.0).abs() < 1e-12);
        assert!((f.max_lifetime - 0.8).abs() < 1e-12);
        assert!((f.threshold - 0.2).abs() < 1e-12);
        assert_eq!(f.dims[0].count, 2);
        assert_eq!(f.dims[0].essential, 1);
        assert!(
            (f.dims[0].entropy - 1.0).abs() < 1e-12,
            "two equal bars have maximal entropy"
        );
        assert_eq!(f.diagram_betti, [1, 1, 0]);
        assert_eq!(f.betti_mismatch, 0);
        // Lifetimes 0.1, 0.1, 0.8: p = .1, .1, .8.
        let h = -(2.0 * 0.1 * 0.1f64.ln() + 0.8 * 0.8f64.ln()) / 3f64.ln();
        assert!((f.entropy - h).abs() < 1e-12);
        let g = Features::compute(&d, &[3, 0, 2], &cfg());
        assert_eq!(g.betti_mismatch, 2 + 1 + 2);
    }

    #[test]
    fn empty_diagram_has_zero_features() {
        let f = Features::compute(&clean(&[]), &[], &cfg());
        assert_eq!(f, Features::default());
    }

    proptest! {
        #[test]
        fn entropy_bounded_and_scale_free(
            ls in prop::collection::vec(0.001f64..10.0, 0..40),
            scale in 0.01f64..100.0,
        ) {
            let e = normalized_entropy(ls.iter().copied());
            prop_assert!((0.0..=1.0).contains(&e));
            let e2 = normalized_entropy(ls.iter().map(|l| l * scale));
            prop_assert!((e - e2).abs() < 1e-9);
        }

        #[test]
        fn significant_never_exceeds_count(
            pts in prop::collection::vec((0i32..3, 0.0f64..5.0, 0.0f64..5.0), 0..50),
        ) {
            let d: Vec<_> = pts.iter().map(|&(k, b, l)| p(k, b, b + l)).collect();
            let f = Features::compute(&clean(&d), &[], &cfg());
            for k in 0..NDIM {
                prop_assert!(f.dims[k].significant <= f.dims[k].count);
            }
            prop_assert!(f.total_persistence >= f.max_lifetime);
        }
    }
}
