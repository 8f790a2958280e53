//! Diagram hygiene: the one place that decides what an odd persistence point means.
//!
//! Upstream detectors disagree on how they encode features that never die, so the rules are fixed here
//! and every other module (features, distances, matching) sees the same cleaned view:
//!
//! - `death` that is `+inf` or NaN (NaN is what a missing death becomes after decoding) marks an
//!   **essential** feature: it is alive at the end of the filtration. Essential points are counted per
//!   dimension (they feed the Betti check and the embedding) but carry no finite lifetime, so they are left
//!   out of lifetimes, total persistence, entropy and both diagram distances. Comparing "infinite" bars by
//!   truncating them at an arbitrary cap would make every distance depend on that cap; counting them keeps the
//!   distances metric and scale-free.
//! - a non-finite `birth`, a `death` of `-inf`, or `death < birth` is malformed: the point is dropped and
//!   counted in `dropped`, which the explanation reports.
//! - `death == birth` lies on the diagonal, where every distance already puts unmatched points: dropped
//!   silently.
//! - dimensions above `MAX_DIM` fold into `MAX_DIM`; negative dimensions are malformed.

use crate::model::PersistencePoint;

/// Homology dimensions tracked separately: H0, H1 and H2-and-above.
pub const NDIM: usize = 3;
/// The highest dimension kept apart; higher ones are folded into it.
pub const MAX_DIM: usize = NDIM - 1;

/// A finite point with its lifetime precomputed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub birth: f64,
    pub death: f64,
}

impl Bar {
    pub fn lifetime(&self) -> f64 {
        self.death - self.birth
    }
}

/// A diagram split by dimension, with essential and malformed points counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanDiagram {
    /// Finite bars per dimension, in input order.
    pub finite: [Vec<Bar>; NDIM],
    /// Essential (never-dying) features per dimension.
    pub essential: [u32; NDIM],
    /// Malformed points that were dropped.
    pub dropped: u32,
}

/// The dimension slot of a point, or None when the dimension is malformed.
fn slot(dimension: i32) -> Option<usize> {
    usize::try_from(dimension).ok().map(|d| d.min(MAX_DIM))
}

/// Applies the rules in the module doc.
pub fn clean(points: &[PersistencePoint]) -> CleanDiagram {
    // Sizing each dimension first saves the repeated regrowth of three vectors on every anomaly.
    let mut sizes = [0usize; NDIM];
    for p in points {
        if let Some(k) = slot(p.dimension) {
            sizes[k] += 1;
        }
    }
    let mut out = CleanDiagram {
        finite: sizes.map(Vec::with_capacity),
        ..CleanDiagram::default()
    };
    for p in points {
        let Some(k) = slot(p.dimension) else {
            out.dropped += 1;
            continue;
        };
        if !p.birth.is_finite() || p.death == f64::NEG_INFINITY {
            out.dropped += 1;
        } else if p.death.is_nan() || p.death == f64::INFINITY {
            out.essential[k] += 1;
        } else if p.death < p.birth {
            out.dropped += 1;
        } else if p.death > p.birth {
            out.finite[k].push(Bar {
                birth: p.birth,
                death: p.death,
            });
        }
    }
    out
}

/// Lifetimes (`death - birth`) of the finite points, in input order; essential and malformed points are
/// excluded per the module rules.
pub fn lifetimes(points: &[PersistencePoint]) -> Vec<f64> {
    let c = clean(points);
    c.finite.iter().flatten().map(Bar::lifetime).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(dimension: i32, birth: f64, death: f64) -> PersistencePoint {
        PersistencePoint {
            dimension,
            birth,
            death,
        }
    }

    #[test]
    fn sorts_points_into_finite_essential_and_dropped() {
        let c = clean(&[
            p(0, 0.0, f64::INFINITY),
            p(0, 0.0, f64::NAN),
            p(1, 0.2, 0.9),
            p(1, 0.5, 0.4),
            p(2, f64::NAN, 1.0),
            p(5, 0.1, 0.3),
            p(-1, 0.0, 1.0),
            p(1, 0.3, 0.3),
        ]);
        assert_eq!(c.essential, [2, 0, 0]);
        assert_eq!(
            c.finite[1],
            vec![Bar {
                birth: 0.2,
                death: 0.9
            }]
        );
        assert_eq!(c.finite[2].len(), 1, "dimension 5 folds into the top slot");
        assert_eq!(c.dropped, 3);
        assert_eq!(
            lifetimes(&[p(1, 0.25, 1.0), p(0, 0.0, f64::INFINITY)]),
            vec![0.75]
        );
    }
}
