//! Held-out accuracy: persistence diagrams that ripser computed from noisy point clouds (circles,
//! figure-eights, tori, clusters, spheres; see tests/heldout/README.md). `fit` learns from the training half,
//! `eval` scores the test half. On the hard variant the engine must beat a plain 5-nearest-neighbour
//! classifier on sliced Wasserstein distance.

use std::path::PathBuf;

use aura::semantic::dataset::{self, LabelledAnomaly};
use aura::semantic::eval::{evaluate, EvalOptions};
use aura::semantic::fit::{fit, FitOptions};
use aura::semantic::sliced_wasserstein::{distance_projected, SlicedWasserstein};
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};

fn load(name: &str) -> Vec<LabelledAnomaly> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/heldout")
        .join(name);
    dataset::read(&path)
        .unwrap_or_else(|e| panic!("{e}: regenerate with tests/heldout/generate.py"))
}

/// Fits on `train`, evaluates on `test`, returns pattern accuracy.
fn engine_accuracy(train: &[LabelledAnomaly], test: &[LabelledAnomaly]) -> f64 {
    let cfg = SemanticConfig::default();
    let (library, summary) = fit(
        train,
        &PatternLibrary::builtin(),
        &FitOptions::default(),
        &cfg,
    );
    assert_eq!(
        summary.new_patterns.len(),
        5,
        "each shape becomes a new pattern: {:?}",
        summary.new_patterns
    );
    let engine = Engine::new(cfg, library);
    let (report, _) = evaluate(&engine, test, EvalOptions::default());
    println!("{report}");
    assert_eq!(
        report.route_accuracy, None,
        "the held-out data has no route labels"
    );
    report.pattern_accuracy
}

/// Plain 5-NN on sliced Wasserstein distance between raw diagrams (majority vote, nearest breaks ties).
fn knn_sw_accuracy(train: &[LabelledAnomaly], test: &[LabelledAnomaly]) -> f64 {
    let sw = SlicedWasserstein::new(16);
    let proj: Vec<_> = train
        .iter()
        .map(|e| sw.project(&e.anomaly.diagram))
        .collect();
    let mut right = 0;
    for t in test {
        let q = sw.project(&t.anomaly.diagram);
        let mut d: Vec<(f64, &str)> = proj
            .iter()
            .zip(train)
            .map(|(p, e)| (distance_projected(&q, p), e.label.pattern.as_str()))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0));
        let top = &d[..5.min(d.len())];
        let votes = |name: &str| top.iter().filter(|x| x.1 == name).count();
        let best = top
            .iter()
            .max_by_key(|x| {
                (
                    votes(x.1),
                    std::cmp::Reverse(top.iter().position(|y| y.1 == x.1)),
                )
            })
            .map(|x| x.1);
        right += usize::from(best == Some(t.label.pattern.as_str()));
    }
    right as f64 / test.len() as f64
}

#[test]
fn standard_heldout_accuracy_at_least_95_percent() {
    let acc = engine_accuracy(&load("standard-train.jsonl"), &load("standard-test.jsonl"));
    assert!(acc >= 0.95, "held-out pattern accuracy {acc:.3} < 0.95");
}

#[test]
fn hard_heldout_beats_5nn_sliced_wasserstein() {
    let (train, test) = (load("hard-train.jsonl"), load("hard-test.jsonl"));
    let ours = engine_accuracy(&train, &test);
    let baseline = knn_sw_accuracy(&train, &test);
    println!("hard variant: engine {ours:.3}, 5-NN sliced Wasserstein {baseline:.3}");
    assert!(
        ours > baseline,
        "engine {ours:.3} does not beat 5-NN SW {baseline:.3}"
    );
}
