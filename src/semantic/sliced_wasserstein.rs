//! Sliced Wasserstein distance between persistence diagrams (Carrière, Cuturi, Oudot 2017): the fast
//! default distance.
//!
//! For a direction θ, every point `(b, d)` projects to `b·cosθ + d·sinθ` and its diagonal projection to
//! `(b+d)/2·(cosθ + sinθ)`. The 1-D Wasserstein distance between `proj(A) ∪ proj(Δ(B))` and
//! `proj(B) ∪ proj(Δ(A))` equals `∫ |N_A(t) − N_B(t)| dt`, where `N_X` counts the projections of X minus the
//! projections of X's own diagonal points up to t. `N_X` depends on X alone, so each diagram is projected
//! and sorted once ([`Projected`]) and a distance is a linear merge of two sorted lists per direction.
//! That also makes each direction's term an L1 distance between functions, so the average over directions
//! is a pseudometric exactly (no sampling noise): the directions are evenly spaced, not random.
//!
//! Diagrams of different sizes are handled by the diagonal terms; an empty diagram has `N = 0`.
//! Dimensions are compared separately and summed; essential points are excluded (see [`super::diagram`]).

use std::f64::consts::PI;

use super::diagram::{clean, CleanDiagram, NDIM};
use crate::model::PersistencePoint;

/// The direction set; cheap to clone and shared by every distance that must be comparable.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicedWasserstein {
    /// (cosθ, sinθ) for θ evenly spaced over [−π/2, π/2).
    directions: Vec<(f64, f64)>,
}

/// A diagram projected on every direction: per dimension, per direction, sorted `(value, ±1)` events.
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    directions: usize,
    /// `events[k][i]` holds dimension k, direction i.
    events: [Vec<Vec<(f64, i8)>>; NDIM],
}

impl SlicedWasserstein {
    /// `directions` is clamped to at least 1.
    pub fn new(directions: usize) -> Self {
        let m = directions.max(1);
        let directions = (0..m)
            .map(|i| {
                let theta = -PI / 2.0 + PI * (i as f64 + 0.5) / m as f64;
                (theta.cos(), theta.sin())
            })
            .collect();
        SlicedWasserstein { directions }
    }

    pub fn directions(&self) -> usize {
        self.directions.len()
    }

    pub fn project(&self, diagram: &[PersistencePoint]) -> Projected {
        self.project_clean(&clean(diagram))
    }

    pub fn project_clean(&self, diagram: &CleanDiagram) -> Projected {
        let events = std::array::from_fn(|k| {
            let bars = &diagram.finite[k];
            self.directions
                .iter()
                .map(|&(c, s)| {
                    let mut ev: Vec<(f64, i8)> = Vec::with_capacity(2 * bars.len());
                    for b in bars {
                        ev.push((b.birth * c + b.death * s, 1));
                        ev.push((0.5 * (b.birth + b.death) * (c + s), -1));
                    }
                    ev.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
                    ev
                })
                .collect()
        });
        Projected {
            directions: self.directions.len(),
            events,
        }
    }

    /// Distance between two raw diagrams.
    pub fn distance(&self, a: &[PersistencePoint], b: &[PersistencePoint]) -> f64 {
        distance_projected(&self.project(a), &self.project(b))
    }
}

/// Distance between two diagrams projected by the same [`SlicedWasserstein`].
pub fn distance_projected(a: &Projected, b: &Projected) -> f64 {
    assert_eq!(
        a.directions, b.directions,
        "diagrams projected on different direction sets"
    );
    let mut total = 0.0;
    for k in 0..NDIM {
        for (ea, eb) in a.events[k].iter().zip(&b.events[k]) {
            total += sweep(ea, eb);
        }
    }
    total / a.directions as f64
}

/// ∫ |N_A − N_B| over the merged sorted events (A counts +, B counts −).
fn sweep(a: &[(f64, i8)], b: &[(f64, i8)]) -> f64 {
    let (mut i, mut j) = (0, 0);
    let mut level: i32 = 0;
    let mut prev = 0.0;
    let mut acc = 0.0;
    while i < a.len() || j < b.len() {
        let take_a = j >= b.len() || (i < a.len() && a[i].0 <= b[j].0);
        let (t, delta) = if take_a {
            i += 1;
            (a[i - 1].0, a[i - 1].1 as i32)
        } else {
            j += 1;
            (b[j - 1].0, -(b[j - 1].1 as i32))
        };
        if level != 0 {
            acc += level.unsigned_abs() as f64 * (t - prev);
        }
        level += delta;
        prev = t;
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(dimension: i32, birth: f64, death: f64) -> PersistencePoint {
        PersistencePoint {
            dimension,
            birth,
            death,
        }
    }

    /// The same integral by brute force: 1-D W1 between sorted equal-size point sets.
    fn brute(sw: &SlicedWasserstein, a: &[PersistencePoint], b: &[PersistencePoint]) -> f64 {
        let mut total = 0.0;
        for &(c, s) in &sw.directions {
            for k in 0..3 {
                let (ak, bk): (Vec<_>, Vec<_>) = (
                    a.iter().filter(|x| x.dimension == k).collect(),
                    b.iter().filter(|x| x.dimension == k).collect(),
                );
                let diag = |x: &PersistencePoint| 0.5 * (x.birth + x.death) * (c + s);
                let proj = |x: &PersistencePoint| x.birth * c + x.death * s;
                let mut u: Vec<f64> = ak
                    .iter()
                    .map(|x| proj(x))
                    .chain(bk.iter().map(|x| diag(x)))
                    .collect();
                let mut v: Vec<f64> = bk
                    .iter()
                    .map(|x| proj(x))
                    .chain(ak.iter().map(|x| diag(x)))
                    .collect();
                u.sort_by(f64::total_cmp);
                v.sort_by(f64::total_cmp);
                total += u.iter().zip(&v).map(|(x, y)| (x - y).abs()).sum::<f64>();
            }
        }
        total / sw.directions.len() as f64
    }

    #[test]
    fn hand_computed_single_point_against_empty() {
        // One direction θ = 0: point (0, 2) projects to 0, its diagonal (1, 1) to 1: W1 = 1.
        let sw = SlicedWasserstein::new(1);
        assert!((sw.distance(&[p(1, 0.0, 2.0)], &[]) - 1.0).abs() < 1e-12);
        assert_eq!(sw.distance(&[], &[]), 0.0);
        // Essential points are not part of the distance.
        assert_eq!(sw.distance(&[p(0, 0.0, f64::INFINITY)], &[]), 0.0);
        // Different dimensions never match each other.
        let d = sw.distance(&[p(1, 0.0, 2.0)], &[p(0, 0.0, 2.0)]);
        assert!((d - 2.0).abs() < 1e-12);
    }

    fn diagram() -> impl Strategy<Value = Vec<PersistencePoint>> {
        prop::collection::vec((0i32..2, 0.0f64..4.0, 0.0f64..3.0), 0..12)
            .prop_map(|v| v.into_iter().map(|(k, b, l)| p(k, b, b + l)).collect())
    }

    proptest! {
        #[test]
        fn matches_brute_force(a in diagram(), b in diagram()) {
            let sw = SlicedWasserstein::new(7);
            prop_assert!((sw.distance(&a, &b) - brute(&sw, &a, &b)).abs() < 1e-9);
        }

        #[test]
        fn is_a_pseudometric(a in diagram(), b in diagram(), c in diagram()) {
            let sw = SlicedWasserstein::new(8);
            prop_assert!(sw.distance(&a, &a).abs() < 1e-12);
            prop_assert!((sw.distance(&a, &b) - sw.distance(&b, &a)).abs() < 1e-9);
            prop_assert!(sw.distance(&a, &c) <= sw.distance(&a, &b) + sw.distance(&b, &c) + 1e-9);
        }

        #[test]
        fn stable_under_perturbation(
            a in diagram(),
            eps in 0.0f64..0.2,
            jitter in prop::collection::vec((-1.0f64..1.0, -1.0f64..1.0), 12),
        ) {
            let b: Vec<_> = a.iter().zip(&jitter).map(|(x, &(u, v))| {
                let birth = x.birth + eps * u;
                p(x.dimension, birth, (x.death + eps * v).max(birth))
            }).collect();
            // Each point moves at most eps per coordinate, so each projection by at most √2·eps.
            let bound = std::f64::consts::SQRT_2 * eps * a.len() as f64 * 2.0;
            prop_assert!(SlicedWasserstein::new(8).distance(&a, &b) <= bound + 1e-9);
        }
    }
}
