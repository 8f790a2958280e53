//! Accuracy on the project's own archetype generator: the shipped library, a library fitted on one seed
//! and evaluated on another, and recovery after the drift scenario's shape change with online feedback.

use aura::semantic::archetypes::{scenario, DRIFT_AFTER};
use aura::semantic::eval::{evaluate, EvalOptions};
use aura::semantic::fit::{fit, FitOptions};
use aura::semantic::{Engine, LabelledAnomaly, PatternLibrary, SemanticConfig};

fn draw(name: &str, seed: u64, noise: f64, n: usize) -> Vec<LabelledAnomaly> {
    scenario(name, seed, noise)
        .expect("known scenario")
        .take(n)
        .collect()
}

fn accuracy(outcomes: &[bool]) -> f64 {
    outcomes.iter().filter(|&&ok| ok).count() as f64 / outcomes.len() as f64
}

#[test]
fn shipped_library_is_accurate_on_noisy_generated_data() {
    let engine = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
    let (report, _) = evaluate(
        &engine,
        &draw("mixed", 4242, 0.7, 1500),
        EvalOptions::default(),
    );
    println!("{report}");
    assert!(
        report.pattern_accuracy >= 0.95,
        "pattern accuracy {:.3}",
        report.pattern_accuracy
    );
    // The labels follow the documented routing policy (README "Routing policy"), so this measures the
    // router against the policy; misses show up in the route confusion printed above.
    let route = report
        .route_accuracy
        .expect("generated data carries route labels");
    assert!(route >= 0.95, "route accuracy {route:.3}");
    let layer = &report.route_confusion["layer"];
    assert!(layer.contains_key("Strategic") && layer.contains_key("Operational"));
}

#[test]
fn fit_on_one_seed_generalizes_to_another() {
    let cfg = SemanticConfig::default();
    let (library, summary) = fit(
        &draw("mixed", 1, 0.6, 1200),
        &PatternLibrary::builtin(),
        &FitOptions::default(),
        &cfg,
    );
    assert!(summary.new_patterns.is_empty());
    let engine = Engine::new(cfg, library);
    let (report, _) = evaluate(
        &engine,
        &draw("mixed", 2, 0.6, 1200),
        EvalOptions::default(),
    );
    println!("{report}");
    assert!(
        report.pattern_accuracy >= 0.95,
        "pattern accuracy {:.3}",
        report.pattern_accuracy
    );
}

#[test]
fn accuracy_recovers_after_drift_with_feedback() {
    let events = draw("drift", 3, 0.5, 3 * DRIFT_AFTER);
    let engine = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
    let (_, outcomes) = evaluate(&engine, &events, EvalOptions { feedback: true });
    let before = accuracy(&outcomes[DRIFT_AFTER / 2..DRIFT_AFTER]);
    // The same drifted leaks against the library as it was before any feedback: the drift is real.
    let drifted: Vec<LabelledAnomaly> = events[DRIFT_AFTER..]
        .iter()
        .filter(|e| e.label.pattern == "memory-leak")
        .cloned()
        .collect();
    let frozen = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
    let (without_feedback, _) = evaluate(&frozen, &drifted, EvalOptions::default());
    let dip = accuracy(&outcomes[DRIFT_AFTER..DRIFT_AFTER + 100]);
    let recovered = accuracy(&outcomes[outcomes.len() - DRIFT_AFTER / 2..]);
    println!(
        "before drift {before:.3}; drifted leaks without feedback {:.3}; first 100 events after the drift {dip:.3}; last {} events with feedback {recovered:.3}; library version {}",
        without_feedback.pattern_accuracy,
        DRIFT_AFTER / 2,
        engine.library_version()
    );
    assert!(
        without_feedback.pattern_accuracy < 0.5,
        "the drift should break matching without feedback"
    );
    assert!(
        recovered >= before - 0.02,
        "accuracy after feedback {recovered:.3} vs {before:.3} before the drift"
    );
}
