//! Engine-level tests: routing rules, the route cache and its invalidation, unknowns, and learning.

use std::collections::HashMap;

use super::archetypes::scenario;
use super::config::{RoutingConfig, SemanticConfig};
use super::engine::Engine;
use super::patterns::PatternLibrary;
use super::routing::{RouteInputs, Router, FLAG_CONSENSUS};
use crate::model::{
    AgentRegistration, AgentStatus, AgentType, Coordination, FeatureFlag, Layer, PersistencePoint,
    RoutingFeedback, Severity, TdaAnomaly,
};

fn engine() -> Engine {
    Engine::new(SemanticConfig::default(), PatternLibrary::builtin())
}

fn anomaly(pattern: &str, seed: u64) -> TdaAnomaly {
    scenario(pattern, seed, 0.2)
        .unwrap()
        .next()
        .unwrap()
        .anomaly
}

fn agent(id: &str, agent_type: AgentType, caps: &[&str]) -> AgentRegistration {
    AgentRegistration {
        agent_id: id.into(),
        agent_type,
        capabilities: caps.iter().map(|c| c.to_string()).collect(),
        capacity: 4,
        status: AgentStatus::Available,
        updated_at: 0,
    }
}

#[test]
fn engine_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Engine>();
}

#[test]
fn assess_matches_routes_and_explains() {
    let e = engine();
    let mut a = anomaly("memory-leak", 1);
    a.entities.truncate(1);
    let r = e.assess(&a, None, a.detected_at);
    assert_eq!(
        r.pattern_id.as_deref(),
        Some("memory-leak"),
        "{}",
        r.explanation
    );
    assert!(
        (0.0..=1.0).contains(&r.confidence)
            && (0.0..=1.0).contains(&r.urgency)
            && (0.0..=1.0).contains(&r.complexity)
    );
    assert_eq!(r.route.workflow, "memory-leak-remediation");
    assert_eq!(
        r.route.agent_types,
        vec![
            AgentType::Observer,
            AgentType::Analyst,
            AgentType::Supervisor
        ]
    );
    assert_eq!(r.route.coordination, Coordination::Pipeline);
    for part in [
        "pattern memory-leak",
        "complexity",
        "entropy",
        "urgency",
        "severity",
        "decay",
        "workflow memory-leak-remediation",
    ] {
        assert!(
            r.explanation.contains(part),
            "{part} missing from {}",
            r.explanation
        );
    }
}

#[test]
fn unknown_goes_to_an_analyst_for_triage() {
    let mut cfg = SemanticConfig::default();
    cfg.matcher.radius_factor = 1e-6;
    let e = Engine::new(cfg, PatternLibrary::builtin());
    let a = anomaly("ddos", 2);
    let r = e.assess(&a, None, a.detected_at);
    assert_eq!(r.pattern_id, None);
    assert_eq!(r.confidence, 0.0);
    assert_eq!(r.route.agent_type, AgentType::Analyst);
    assert_eq!(r.route.workflow, "triage");
    assert!(r.runner_up.is_some() && r.explanation.starts_with("unknown"));
}

#[test]
fn coordination_rules_in_order() {
    let lib = PatternLibrary::builtin();
    let router = Router::new(RoutingConfig::default());
    let p = Some((0, &lib.patterns[0]));
    let route = |confidence: f64, urgency: f64, complexity: f64, entities: usize| {
        router
            .route(
                &RouteInputs {
                    pattern: p,
                    confidence,
                    urgency,
                    base_urgency: urgency,
                    complexity,
                    entities,
                    source: "s",
                },
                1,
            )
            .route
            .clone()
    };
    assert_eq!(
        route(0.3, 0.95, 0.9, 5).coordination,
        Coordination::Consensus
    );
    assert_eq!(
        route(0.9, 0.95, 0.9, 5).coordination,
        Coordination::Hierarchical
    );
    assert_eq!(route(0.9, 0.3, 0.5, 3).coordination, Coordination::FanOut);
    let plain = route(0.9, 0.3, 0.5, 1);
    assert_eq!(
        (plain.coordination, plain.layer),
        (Coordination::Pipeline, Layer::Operational)
    );
    assert_eq!(route(0.9, 0.95, 0.2, 1).layer, Layer::Strategic);
    assert_eq!(route(0.9, 0.7, 0.2, 1).layer, Layer::Tactical);
    // A flag rolled out to nobody switches the consensus rule off.
    router.on_flag(&FeatureFlag {
        name: FLAG_CONSENSUS.into(),
        enabled: true,
        rollout_percent: 0.0,
        updated_at: 0,
    });
    assert_eq!(
        route(0.3, 0.95, 0.9, 5).coordination,
        Coordination::Hierarchical
    );
}

#[test]
fn cache_hits_and_is_invalidated_by_registry_flags_and_learning() {
    let e = engine();
    let a = anomaly("network-partition", 3);
    e.assess(&a, None, a.detected_at);
    e.assess(&a, None, a.detected_at);
    let s = e.router_stats();
    assert_eq!((s.hits, s.misses), (1, 1));
    e.on_registration(&agent("o1", AgentType::Observer, &["network-probe"]));
    e.assess(&a, None, a.detected_at);
    assert_eq!(e.router_stats().misses, 2);
    e.on_flag(&FeatureFlag {
        name: "x".into(),
        enabled: true,
        rollout_percent: 100.0,
        updated_at: 0,
    });
    e.assess(&a, None, a.detected_at);
    assert_eq!(e.router_stats().misses, 3);
    let v = e.library_version();
    let fb = RoutingFeedback {
        anomaly_id: "f".into(),
        pattern: Some("brand-new-pattern".into()),
        agent_type: None,
        coordination: None,
        layer: None,
        anomaly: Some(a.clone()),
        confirmed_by: "ops".into(),
        at: 0,
    };
    assert!(e.on_feedback(&fb));
    assert_eq!(e.library_version(), v + 1);
    e.assess(&a, None, a.detected_at);
    assert_eq!(e.router_stats().misses, 4);
    assert!(e.library().pattern("brand-new-pattern").is_some());
}

#[test]
fn missing_capabilities_reassign_or_report() {
    let e = engine();
    let mut a = anomaly("memory-leak", 4);
    a.entities.truncate(1);
    // Only an Analyst who can profile heaps, and nobody who can restart.
    e.on_registration(&agent("a1", AgentType::Analyst, &["heap-profiling"]));
    let r = e.assess(&a, None, a.detected_at);
    assert_eq!(
        r.route.agent_types,
        vec![
            AgentType::Analyst,
            AgentType::Analyst,
            AgentType::Supervisor
        ]
    );
    assert_eq!(r.route.missing_capabilities, vec!["restart".to_string()]);
    assert!(r.explanation.contains("reassigned"), "{}", r.explanation);
}

#[test]
fn malformed_and_infinite_points_never_panic() {
    let e = engine();
    let mut a = anomaly("sensor-fault", 5);
    a.diagram.extend([
        PersistencePoint {
            dimension: -3,
            birth: 0.0,
            death: 1.0,
        },
        PersistencePoint {
            dimension: 1,
            birth: f64::NAN,
            death: f64::NAN,
        },
        PersistencePoint {
            dimension: 9,
            birth: 0.0,
            death: f64::INFINITY,
        },
        PersistencePoint {
            dimension: 1,
            birth: 2.0,
            death: 1.0,
        },
    ]);
    a.anomaly_score = f64::NAN;
    a.severity = Severity::Critical;
    let r = e.assess(&a, None, a.detected_at - 10);
    assert!(r.urgency.is_finite() && r.explanation.contains("malformed"));
    let empty = TdaAnomaly {
        diagram: vec![],
        betti: vec![],
        tags: vec![],
        entities: vec![],
        attributes: HashMap::new(),
        ..a
    };
    let r = e.assess(&empty, None, 0);
    assert!((0.0..=1.0).contains(&r.confidence));
}

#[test]
fn explanation_numbers_have_two_decimals() {
    let e = engine();
    let mut a = anomaly("ddos", 7);
    a.anomaly_score = 0.456;
    let r = e.assess(&a, None, a.detected_at);
    assert!(r.explanation.contains("score 0.46)"), "{}", r.explanation);
    assert!(r.explanation.contains("(severity "), "{}", r.explanation);
}

#[test]
fn layer_follows_base_urgency_not_amplified_or_decayed_urgency() {
    let lib = PatternLibrary::builtin();
    let router = Router::new(RoutingConfig::default());
    let leak = lib.patterns.iter().position(|p| p.name == "memory-leak");
    let p = leak.map(|i| (i, &lib.patterns[i]));
    let route = |urgency: f64, base_urgency: f64| {
        router
            .route(
                &RouteInputs {
                    pattern: p,
                    confidence: 0.3,
                    urgency,
                    base_urgency,
                    complexity: 0.2,
                    entities: 1,
                    source: "s",
                },
                1,
            )
            .route
            .clone()
    };
    // Amplified past the strategic band, yet a MEDIUM-severity base: the pattern's own layer; the
    // amplified urgency still asks for consensus.
    let amplified = route(0.95, 0.5);
    assert_eq!(amplified.layer, Layer::Operational);
    assert_eq!(amplified.coordination, Coordination::Consensus);
    // Decayed far below every band (an old record read late), a CRITICAL base stays strategic.
    assert_eq!(route(0.2, 0.95).layer, Layer::Strategic);
    assert_eq!(route(0.2, 0.65).layer, Layer::Tactical);
}
