//! A fixed-length, scale-normalized vectorization of a diagram, which the matcher compares under a learned
//! diagonal metric.
//!
//! Every filtration value is divided by the diagram's largest finite lifetime `s`, so the same shape at
//! another scale embeds to the same point; `ln s` is kept as one coordinate, and the learned metric decides
//! how much scale matters (it matters little when scales vary within a pattern). Counts enter as
//! `ln(1 + n)` so diagram size shifts a coordinate instead of dominating it. Per dimension the vector holds
//! the top lifetimes, entropy, total persistence, counts, where the most persistent feature lives, and a
//! coarse Betti curve; globally, the scale and the share of persistence per dimension.
//!
//! A single outlier can own the largest bar, so a second block measures the top bars of each dimension
//! against a robust reference instead: the median H0 lifetime, the typical spacing of the data (any
//! positive median of the finite bars when H0 is empty). Ratios of the two blocks are scale-free as well.

use super::diagram::{Bar, CleanDiagram, NDIM};
use super::features::normalized_entropy;

/// Top lifetimes kept per dimension.
const TOP: usize = 4;
/// Filtration values (as multiples of `s`) at which the Betti curve is sampled.
const CURVE: [f64; 5] = [0.1, 0.25, 0.5, 1.0, 2.0];
const PER_DIM: usize = TOP + 7 + CURVE.len();
/// Coordinates per dimension measured against the typical H0 spacing instead of the largest bar.
const SPACING: usize = 4;
/// Start of the global block (scale and per-dimension shares).
const GLOBAL: usize = NDIM * PER_DIM;
/// Start of the spacing block.
const SPACED: usize = GLOBAL + 1 + NDIM;
/// Length of an embedding.
pub const EMBED_DIM: usize = SPACED + NDIM * SPACING;

pub type Embedding = [f32; EMBED_DIM];

/// The name of each coordinate, for explanations and the fitted metric's documentation.
pub fn coordinate_name(i: usize) -> String {
    const NAMES: [&str; PER_DIM - CURVE.len()] = [
        "top1",
        "top2",
        "top3",
        "top4",
        "entropy",
        "ln_total",
        "ln_count",
        "ln_essential",
        "top_birth",
        "top_death",
        "mean_birth",
    ];
    if i < NDIM * PER_DIM {
        let (k, j) = (i / PER_DIM, i % PER_DIM);
        match NAMES.get(j) {
            Some(n) => format!("h{k}.{n}"),
            None => format!("h{k}.betti@{}", CURVE[j - NAMES.len()]),
        }
    } else if i == GLOBAL {
        "ln_scale".to_string()
    } else if i < SPACED {
        format!("h{}.share", i - GLOBAL - 1)
    } else {
        let (k, j) = ((i - SPACED) / SPACING, (i - SPACED) % SPACING);
        match j {
            0..=2 => format!("h{k}.top{}_over_spacing", j + 1),
            _ => format!("h{k}.ln_above_3_spacings"),
        }
    }
}

pub fn embed(d: &CleanDiagram) -> Embedding {
    let entropy =
        std::array::from_fn(|k| normalized_entropy(d.finite[k].iter().map(Bar::lifetime)));
    embed_with_entropy(d, entropy)
}

/// [`embed`] reusing per-dimension entropies already computed (by [`super::features::Features`]).
pub fn embed_with_entropy(d: &CleanDiagram, entropy: [f64; NDIM]) -> Embedding {
    let mut e = [0f32; EMBED_DIM];
    let s = d
        .finite
        .iter()
        .flatten()
        .map(Bar::lifetime)
        .fold(0.0, f64::max);
    let s = if s > 0.0 { s } else { 1.0 };
    let mut totals = [0.0; NDIM];
    for k in 0..NDIM {
        let bars = &d.finite[k];
        let out = &mut e[k * PER_DIM..(k + 1) * PER_DIM];
        // Top lifetimes by insertion into a tiny sorted array: no allocation, no full sort.
        let mut top = [(0.0f64, 0.0f64, 0.0f64); TOP];
        let (mut total, mut birth_sum) = (0.0, 0.0);
        for b in bars {
            let l = b.lifetime();
            total += l;
            birth_sum += b.birth;
            if l > top[TOP - 1].0 {
                let mut i = TOP - 1;
                while i > 0 && top[i - 1].0 < l {
                    top[i] = top[i - 1];
                    i -= 1;
                }
                top[i] = (l, b.birth, b.death);
            }
        }
        totals[k] = total;
        for i in 0..TOP {
            out[i] = (top[i].0 / s) as f32;
        }
        out[TOP] = entropy[k] as f32;
        out[TOP + 1] = (total / s).ln_1p() as f32;
        out[TOP + 2] = (bars.len() as f64).ln_1p() as f32;
        out[TOP + 3] = (d.essential[k] as f64).ln_1p() as f32;
        out[TOP + 4] = (top[0].1 / s) as f32;
        out[TOP + 5] = (top[0].2 / s) as f32;
        out[TOP + 6] = if bars.is_empty() {
            0.0
        } else {
            (birth_sum / bars.len() as f64 / s) as f32
        };
        for (j, &c) in CURVE.iter().enumerate() {
            let t = c * s;
            let alive = bars.iter().filter(|b| b.birth <= t && t < b.death).count() as f64;
            out[TOP + 7 + j] = (alive + d.essential[k] as f64).ln_1p() as f32;
        }
    }
    e[GLOBAL] = s.ln() as f32;
    let grand: f64 = totals.iter().sum();
    for k in 0..NDIM {
        e[GLOBAL + 1 + k] = if grand > 0.0 {
            (totals[k] / grand) as f32
        } else {
            0.0
        };
    }
    let m0 = spacing(d);
    for k in 0..NDIM {
        let at = SPACED + k * SPACING;
        // The top lifetimes are already in the first block, relative to s.
        for j in 0..3 {
            e[at + j] = (f64::from(e[k * PER_DIM + j]) * s / m0).ln_1p() as f32;
        }
        let above = d.finite[k]
            .iter()
            .filter(|b| b.lifetime() > 3.0 * m0)
            .count();
        e[at + 3] = (above as f64).ln_1p() as f32;
    }
    e
}

/// Median H0 lifetime (else median finite lifetime, else 1): the typical spacing of the data.
fn spacing(d: &CleanDiagram) -> f64 {
    let pick = if d.finite[0].is_empty() {
        d.finite.iter().flatten().collect::<Vec<_>>()
    } else {
        d.finite[0].iter().collect()
    };
    let mut l: Vec<f64> = pick.into_iter().map(Bar::lifetime).collect();
    if l.is_empty() {
        return 1.0;
    }
    let mid = l.len() / 2;
    let (_, m, _) = l.select_nth_unstable_by(mid, f64::total_cmp);
    if *m > 0.0 {
        *m
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::diagram::clean;
    use super::*;
    use crate::model::PersistencePoint;

    fn p(dimension: i32, birth: f64, death: f64) -> PersistencePoint {
        PersistencePoint {
            dimension,
            birth,
            death,
        }
    }

    #[test]
    fn scale_moves_only_the_scale_coordinate() {
        let d = [
            p(0, 0.0, 0.3),
            p(0, 0.0, f64::INFINITY),
            p(1, 0.45, 2.0),
            p(1, 0.5, 0.9),
            p(2, 1.0, 1.2),
        ];
        let scaled: Vec<_> = d
            .iter()
            .map(|x| p(x.dimension, x.birth * 7.0, x.death * 7.0))
            .collect();
        let (a, b) = (embed(&clean(&d)), embed(&clean(&scaled)));
        for i in 0..EMBED_DIM {
            if coordinate_name(i) == "ln_scale" {
                assert!((b[i] - a[i] - 7f32.ln()).abs() < 1e-5);
            } else {
                assert!((a[i] - b[i]).abs() < 1e-5, "{} differs", coordinate_name(i));
            }
        }
        assert_eq!(a[PER_DIM], 1.0, "the largest H1 bar is the scale");
        assert_eq!(coordinate_name(PER_DIM + 1), "h1.top2");
    }

    #[test]
    fn empty_diagram_embeds_to_zero() {
        assert!(embed(&clean(&[])).iter().all(|&x| x == 0.0));
    }
}
