//! Online learning as the service runs it: bounded per source, rolled back by a flag, and shared
//! between engines through changelog records.

use super::archetypes::scenario;
use super::learned::{LearnedPattern, FLAG_SHIPPED};
use super::learning::source_cap;
use super::{Engine, PatternLibrary, SemanticConfig};
use crate::model::{FeatureFlag, RoutingFeedback, TdaAnomaly};

fn feedback(pattern: &str, anomaly: &TdaAnomaly) -> RoutingFeedback {
    RoutingFeedback {
        anomaly_id: anomaly.anomaly_id.clone(),
        pattern: Some(pattern.into()),
        agent_type: None,
        coordination: None,
        layer: None,
        anomaly: Some(anomaly.clone()),
        confirmed_by: "ops".into(),
        at: 0,
    }
}

/// DDoS-shaped anomalies from one source: far from memory-leak, so each is learned, never refreshed.
fn noisy(n: usize) -> Vec<TdaAnomaly> {
    scenario("ddos", 11, 0.3)
        .unwrap()
        .take(n)
        .map(|mut ex| {
            ex.anomaly.source = "noisy-svc".into();
            ex.anomaly
        })
        .collect()
}

fn flag(enabled: bool) -> FeatureFlag {
    FeatureFlag {
        name: FLAG_SHIPPED.into(),
        enabled,
        rollout_percent: 100.0,
        updated_at: 0,
    }
}

#[test]
fn one_noisy_source_holds_at_most_its_share_of_a_pattern() {
    let engine = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
    let cfg = &engine.config().learning;
    let cap = source_cap(cfg);
    assert_eq!(cap, 4, "16 prototypes at a 0.25 share");
    let shipped = PatternLibrary::builtin()
        .pattern("memory-leak")
        .unwrap()
        .prototypes
        .clone();
    let mut last = None;
    for a in noisy(60) {
        if let Some(record) = engine.learn(&feedback("memory-leak", &a)) {
            last = Some(record);
        }
    }
    let record = last.expect("far-away confirmed anomalies are learned");
    let from_noisy = record.sources.iter().filter(|s| *s == "noisy-svc").count();
    assert_eq!(from_noisy, cap, "sources {:?}", record.sources);
    assert_eq!(record.sources.len(), record.pattern.prototypes.len());
    // Everything else in the pattern is still what shipped: the noisy source replaced only its own.
    let kept = record
        .pattern
        .prototypes
        .iter()
        .filter(|p| shipped.contains(p))
        .count();
    assert_eq!(
        kept,
        record.pattern.prototypes.len() - cap,
        "the noisy source evicted shipped prototypes beyond its share"
    );
    assert!(kept >= shipped.len().min(cfg.max_prototypes - cap));
}

#[test]
fn the_shipped_flag_rolls_routing_back_and_forth_without_losing_what_was_learned() {
    let engine = Engine::new(SemanticConfig::default(), PatternLibrary::builtin());
    let a = noisy(1).remove(0);
    let before = engine.assess(&a, None, a.detected_at);
    assert_eq!(before.pattern_id.as_deref(), Some("ddos"));
    assert!(engine.on_feedback(&feedback("storm-of-the-century", &a)));
    let learned = engine.assess(&a, None, a.detected_at);
    assert_eq!(learned.pattern_id.as_deref(), Some("storm-of-the-century"));
    assert!(learned
        .explanation
        .ends_with(&format!("; pattern library v{}", learned.library_version)));

    engine.on_flag(&flag(true));
    let rolled = engine.assess(&a, None, a.detected_at);
    assert_eq!(rolled.pattern_id, before.pattern_id);
    assert_eq!(rolled.library_version, before.library_version);
    assert!(
        rolled.explanation.contains("shipped: learning rolled back"),
        "{}",
        rolled.explanation
    );
    // Learning still records while rolled back.
    assert!(engine.library().pattern("storm-of-the-century").is_some());

    engine.on_flag(&flag(false));
    let back = engine.assess(&a, None, a.detected_at);
    assert_eq!(back.pattern_id.as_deref(), Some("storm-of-the-century"));
}

#[test]
fn changelog_records_teach_other_engines_and_tombstones_reset_to_shipped() {
    let (writer, reader) = (
        Engine::new(SemanticConfig::default(), PatternLibrary::builtin()),
        Engine::new(SemanticConfig::default(), PatternLibrary::builtin()),
    );
    let a = noisy(1).remove(0);
    let record = writer.learn(&feedback("memory-leak", &a)).expect("learned");
    // The record survives its changelog encoding.
    let record = LearnedPattern::from_bytes("memory-leak", &record.to_bytes()).unwrap();
    assert!(
        !writer.apply_learned("memory-leak", Some(&record)),
        "own write-back"
    );
    assert!(reader.apply_learned("memory-leak", Some(&record)));
    assert!(
        !reader.apply_learned("memory-leak", Some(&record)),
        "idempotent"
    );
    assert_eq!(
        reader.library().pattern("memory-leak"),
        writer.library().pattern("memory-leak")
    );
    assert!(reader.library_version() >= record.library_version);
    let (w, r) = (
        writer.assess(&a, None, a.detected_at),
        reader.assess(&a, None, a.detected_at),
    );
    assert_eq!((w.pattern_id, w.route), (r.pattern_id, r.route));

    assert!(reader.apply_learned("memory-leak", None));
    assert_eq!(
        reader.library().pattern("memory-leak"),
        PatternLibrary::builtin().pattern("memory-leak")
    );
    // A learned pattern's tombstone removes it.
    let new = writer.learn(&feedback("brand-new", &a)).expect("learned");
    assert!(reader.apply_learned("brand-new", Some(&new)));
    assert!(reader.apply_learned("brand-new", None));
    assert!(reader.library().pattern("brand-new").is_none());
}

#[test]
fn feedback_creates_at_most_max_new_patterns() {
    let mut config = SemanticConfig::default();
    config.learning.max_new_patterns = 2;
    let engine = Engine::new(config, PatternLibrary::builtin());
    let a = noisy(1).remove(0);
    assert!(engine.on_feedback(&feedback("invented-1", &a)));
    assert!(engine.on_feedback(&feedback("invented-2", &a)));
    assert!(!engine.on_feedback(&feedback("invented-3", &a)));
    assert!(engine.library().pattern("invented-3").is_none());
    // Patterns that exist still learn.
    let b = noisy(3).remove(2);
    assert!(engine.on_feedback(&feedback("memory-leak", &b)));
}
