//! Exact bottleneck distance between persistence diagrams, for audits and tests (it is too slow for the
//! per-anomaly path).
//!
//! Per dimension, the distance is the smallest ε such that every point is matched, within ε in L∞, either
//! to a point of the other diagram or to the diagonal (at `(death − birth)/2`). The answer is one of the
//! candidate costs, so we binary-search them. For a given ε, diagonal copies can always match each other,
//! so the question reduces to: is there a matching of A with B (edges ≤ ε) that covers every point too far
//! from the diagonal, on both sides? By the Mendelsohn–Dulmage theorem such a matching exists iff one
//! covering A's far points and one covering B's far points exist separately, which two Hopcroft–Karp runs
//! answer. The diagram distance is the maximum over dimensions; essential points are excluded (see
//! [`super::diagram`]).

use std::collections::VecDeque;

use super::diagram::{clean, Bar, NDIM};
use crate::model::PersistencePoint;

fn linf(a: &Bar, b: &Bar) -> f64 {
    (a.birth - b.birth).abs().max((a.death - b.death).abs())
}

fn to_diagonal(a: &Bar) -> f64 {
    0.5 * (a.death - a.birth)
}

/// Exact bottleneck distance; 0 for two empty diagrams.
pub fn bottleneck(a: &[PersistencePoint], b: &[PersistencePoint]) -> f64 {
    let (ca, cb) = (clean(a), clean(b));
    (0..NDIM)
        .map(|k| bottleneck_dim(&ca.finite[k], &cb.finite[k]))
        .fold(0.0, f64::max)
}

fn bottleneck_dim(a: &[Bar], b: &[Bar]) -> f64 {
    let mut candidates: Vec<f64> = Vec::with_capacity(a.len() * b.len() + a.len() + b.len() + 1);
    candidates.push(0.0);
    candidates.extend(a.iter().chain(b).map(to_diagonal));
    for x in a {
        candidates.extend(b.iter().map(|y| linf(x, y)));
    }
    candidates.sort_unstable_by(f64::total_cmp);
    candidates.dedup();
    // The largest candidate that is at least every diagonal cost is always feasible (match all to the
    // diagonal), so the search has an answer.
    let (mut lo, mut hi) = (0, candidates.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if feasible(a, b, candidates[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    candidates[lo]
}

fn feasible(a: &[Bar], b: &[Bar], eps: f64) -> bool {
    covers_far_points(a, b, eps) && covers_far_points(b, a, eps)
}

/// Whether a matching of `from` into `to` (edges with L∞ ≤ eps) covers every point of `from` farther than
/// eps from the diagonal.
fn covers_far_points(from: &[Bar], to: &[Bar], eps: f64) -> bool {
    let far: Vec<&Bar> = from.iter().filter(|x| to_diagonal(x) > eps).collect();
    if far.len() > to.len() {
        return false;
    }
    let adj: Vec<Vec<usize>> = far
        .iter()
        .map(|x| (0..to.len()).filter(|&j| linf(x, &to[j]) <= eps).collect())
        .collect();
    hopcroft_karp(&adj, to.len()) == far.len()
}

/// Maximum matching size of a bipartite graph given as left adjacency lists.
fn hopcroft_karp(adj: &[Vec<usize>], n_right: usize) -> usize {
    const NONE: usize = usize::MAX;
    let n_left = adj.len();
    let (mut match_l, mut match_r) = (vec![NONE; n_left], vec![NONE; n_right]);
    let mut dist = vec![0usize; n_left];
    let mut size = 0;
    loop {
        // BFS layers from free left vertices.
        let mut queue = VecDeque::new();
        for u in 0..n_left {
            dist[u] = if match_l[u] == NONE {
                queue.push_back(u);
                0
            } else {
                NONE
            };
        }
        let mut found = false;
        while let Some(u) = queue.pop_front() {
            for &v in &adj[u] {
                let w = match_r[v];
                if w == NONE {
                    found = true;
                } else if dist[w] == NONE {
                    dist[w] = dist[u] + 1;
                    queue.push_back(w);
                }
            }
        }
        if !found {
            return size;
        }
        for u in 0..n_left {
            if match_l[u] == NONE && augment(u, adj, &mut match_l, &mut match_r, &mut dist) {
                size += 1;
            }
        }
    }
}

fn augment(
    u: usize,
    adj: &[Vec<usize>],
    ml: &mut [usize],
    mr: &mut [usize],
    dist: &mut [usize],
) -> bool {
    for &v in &adj[u] {
        let w = mr[v];
        if w == usize::MAX || (dist[w] == dist[u] + 1 && augment(w, adj, ml, mr, dist)) {
            ml[u] = v;
            mr[v] = u;
            return true;
        }
    }
    dist[u] = usize::MAX;
    false
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

    #[test]
    fn hand_computed_cases() {
        assert_eq!(bottleneck(&[], &[]), 0.0);
        // Alone, (0, 2) goes to the diagonal at distance 1.
        assert_eq!(bottleneck(&[p(1, 0.0, 2.0)], &[]), 1.0);
        // (0, 2) vs (0.5, 2.25): matched at L∞ 0.5, cheaper than both to the diagonal (max(1, 0.875)).
        assert_eq!(bottleneck(&[p(1, 0.0, 2.0)], &[p(1, 0.5, 2.25)]), 0.5);
        // (0, 2) vs (3, 5): the match costs 3, both to the diagonal costs max(1, 1) = 1.
        assert_eq!(bottleneck(&[p(1, 0.0, 2.0)], &[p(1, 3.0, 5.0)]), 1.0);
        // Different sizes: the extra small bar (0, 0.4) goes to the diagonal at 0.2.
        let d = bottleneck(&[p(0, 0.0, 1.0), p(0, 0.0, 0.4)], &[p(0, 0.0, 1.1)]);
        assert!((d - 0.2).abs() < 1e-12);
        // Dimensions are separate; the worst dimension wins.
        assert_eq!(
            bottleneck(&[p(0, 0.0, 1.0), p(1, 0.0, 4.0)], &[p(0, 0.0, 1.0)]),
            2.0
        );
        // Essential points are excluded.
        assert_eq!(bottleneck(&[p(0, 0.0, f64::INFINITY)], &[]), 0.0);
    }

    fn diagram() -> impl Strategy<Value = Vec<PersistencePoint>> {
        prop::collection::vec((0i32..2, 0.0f64..4.0, 0.0f64..3.0), 0..10)
            .prop_map(|v| v.into_iter().map(|(k, b, l)| p(k, b, b + l)).collect())
    }

    proptest! {
        #[test]
        fn is_a_metric(a in diagram(), b in diagram(), c in diagram()) {
            prop_assert_eq!(bottleneck(&a, &a), 0.0);
            prop_assert_eq!(bottleneck(&a, &b), bottleneck(&b, &a));
            prop_assert!(bottleneck(&a, &c) <= bottleneck(&a, &b) + bottleneck(&b, &c) + 1e-12);
        }

        #[test]
        fn shift_is_at_most_the_perturbation(
            a in diagram(),
            eps in 0.0f64..0.5,
            jitter in prop::collection::vec((-1.0f64..1.0, -1.0f64..1.0), 10),
        ) {
            let b: Vec<_> = a.iter().zip(&jitter).map(|(x, &(u, v))| {
                let birth = x.birth + eps * u;
                p(x.dimension, birth, (x.death + eps * v).max(birth))
            }).collect();
            prop_assert!(bottleneck(&a, &b) <= eps + 1e-12);
        }

        #[test]
        fn bounded_by_sliced_wasserstein_relation(a in diagram(), b in diagram()) {
            // Both distances are zero together: a cheap cross-check of the two implementations.
            let sw = super::super::sliced_wasserstein::SlicedWasserstein::new(16).distance(&a, &b);
            if bottleneck(&a, &b) == 0.0 { prop_assert!(sw < 1e-9); }
        }
    }
}
