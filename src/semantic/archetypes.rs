//! Synthetic labelled anomalies drawn from incident archetypes, for `aura produce`, `aura demo`, and as a
//! dataset for `fit` and `eval`.
//!
//! Each archetype is a topological caricature of an incident (a leak is one long-lived loop, a partition is
//! several long-lived components, a DDoS is a swarm of short-lived components...). `noise` in [0, 1] widens
//! everything at once: the event's overall scale (up to 2× either way), per-point jitter, spurious
//! near-diagonal points, and tags borrowed from other archetypes. The "drift" scenario is "mixed" until
//! [`DRIFT_AFTER`] events, after which memory leaks take on a different shape.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::dataset::{Label, LabelledAnomaly, RouteLabel};
use crate::model::{AgentType, Coordination, Layer, PersistencePoint, Severity, TdaAnomaly};

/// Events before the drift scenario's memory leaks change shape.
pub const DRIFT_AFTER: usize = 1000;

/// Scenario names: "mixed" (the `aura demo` default), "drift", and one per archetype.
pub const SCENARIOS: [&str; 10] = [
    "mixed",
    "drift",
    "memory-leak",
    "network-partition",
    "cascading-failure",
    "ddos",
    "data-drift",
    "sensor-fault",
    "resource-contention",
    "config-regression",
];

type Shape = fn(&mut Gen) -> ();

struct Archetype {
    pattern: &'static str,
    tags: [&'static str; 3],
    first_agent: AgentType,
    layer: Layer,
    /// Severities drawn uniformly.
    severities: &'static [Severity],
    max_entities: usize,
    shape: Shape,
}

use Severity::{Critical, High, Low, Medium};

const ARCHETYPES: [Archetype; 8] = [
    Archetype {
        pattern: "memory-leak",
        tags: ["memory", "heap", "gc-pressure"],
        first_agent: AgentType::Observer,
        layer: Layer::Operational,
        severities: &[Medium, High],
        max_entities: 1,
        shape: memory_leak,
    },
    Archetype {
        pattern: "network-partition",
        tags: ["network", "partition", "unreachable"],
        first_agent: AgentType::Observer,
        layer: Layer::Tactical,
        severities: &[High, Critical],
        max_entities: 4,
        shape: network_partition,
    },
    Archetype {
        pattern: "cascading-failure",
        tags: ["cascade", "timeout", "dependency"],
        first_agent: AgentType::Analyst,
        layer: Layer::Tactical,
        severities: &[High, Critical],
        max_entities: 5,
        shape: cascading_failure,
    },
    Archetype {
        pattern: "ddos",
        tags: ["traffic", "ddos", "saturation"],
        first_agent: AgentType::Observer,
        layer: Layer::Tactical,
        severities: &[High, Critical],
        max_entities: 2,
        shape: ddos,
    },
    Archetype {
        pattern: "data-drift",
        tags: ["drift", "distribution", "schema"],
        first_agent: AgentType::Analyst,
        layer: Layer::Operational,
        severities: &[Low, Medium],
        max_entities: 1,
        shape: data_drift,
    },
    Archetype {
        pattern: "sensor-fault",
        tags: ["sensor", "flatline", "outlier"],
        first_agent: AgentType::Observer,
        layer: Layer::Operational,
        severities: &[Low, Medium],
        max_entities: 1,
        shape: sensor_fault,
    },
    Archetype {
        pattern: "resource-contention",
        tags: ["cpu", "contention", "throttling"],
        first_agent: AgentType::Observer,
        layer: Layer::Operational,
        severities: &[Medium, High],
        max_entities: 2,
        shape: resource_contention,
    },
    Archetype {
        pattern: "config-regression",
        tags: ["deploy", "config", "regression"],
        first_agent: AgentType::Analyst,
        layer: Layer::Tactical,
        severities: &[Medium, High],
        max_entities: 1,
        shape: config_regression,
    },
];

/// The drift scenario's memory leak after the drift.
const DRIFTED_LEAK: Shape = drifted_leak;

/// Builds one diagram: shapes add bars at unit scale, then noise is applied.
struct Gen {
    rng: SmallRng,
    noise: f64,
    points: Vec<PersistencePoint>,
}

impl Gen {
    fn u(&mut self, lo: f64, hi: f64) -> f64 {
        self.rng.random_range(lo..=hi)
    }
    fn n(&mut self, lo: usize, hi: usize) -> usize {
        self.rng.random_range(lo..=hi)
    }
    fn bar(&mut self, dimension: i32, birth: f64, death: f64) {
        self.points.push(PersistencePoint {
            dimension,
            birth,
            death,
        });
    }
    fn essential(&mut self) {
        self.bar(0, 0.0, f64::INFINITY);
    }
    fn small_h0(&mut self, n: usize, lo: f64, hi: f64) {
        for _ in 0..n {
            let d = self.u(lo, hi);
            self.bar(0, 0.0, d);
        }
    }
}

fn memory_leak(g: &mut Gen) {
    g.essential();
    g.small_h0(4, 0.05, 0.15);
    let d = g.u(0.9, 1.1);
    g.bar(1, 0.1, d);
    let d = g.u(0.4, 0.5);
    g.bar(1, 0.2, d);
}

fn drifted_leak(g: &mut Gen) {
    // Allocation churn: a swarm of short-lived components, as in a DDoS, but with a loop and a void left
    // behind by the leak, which a DDoS does not have.
    g.essential();
    let d = g.u(0.9, 1.0);
    g.bar(0, 0.0, d);
    let n = g.n(25, 35);
    g.small_h0(n, 0.02, 0.15);
    let d = g.u(0.5, 0.6);
    g.bar(1, 0.2, d);
    let d = g.u(0.75, 0.85);
    g.bar(2, 0.5, d);
}

fn network_partition(g: &mut Gen) {
    g.essential();
    let k = g.n(2, 4);
    g.small_h0(k, 0.8, 1.0);
    g.small_h0(6, 0.02, 0.1);
}

fn cascading_failure(g: &mut Gen) {
    g.essential();
    g.small_h0(5, 0.05, 0.2);
    for i in 0..g.n(4, 6) {
        let b = 0.1 + 0.15 * i as f64;
        let l = g.u(0.3, 0.5);
        g.bar(1, b, b + l);
    }
}

fn ddos(g: &mut Gen) {
    g.essential();
    g.bar(0, 0.0, 1.0);
    let n = g.n(30, 45);
    g.small_h0(n, 0.02, 0.15);
    for _ in 0..2 {
        let (b, l) = (g.u(0.1, 0.3), g.u(0.02, 0.06));
        g.bar(1, b, b + l);
    }
}

fn data_drift(g: &mut Gen) {
    g.essential();
    g.small_h0(4, 0.05, 0.15);
    for _ in 0..2 {
        let (b, l) = (g.u(0.6, 0.8), g.u(0.3, 0.5));
        g.bar(1, b, b + l);
    }
    g.bar(2, 0.9, 1.1);
}

fn sensor_fault(g: &mut Gen) {
    g.essential();
    let d = g.u(0.9, 1.1);
    g.bar(0, 0.0, d);
    g.small_h0(10, 0.01, 0.04);
}

fn resource_contention(g: &mut Gen) {
    g.essential();
    g.small_h0(5, 0.05, 0.15);
    for _ in 0..2 {
        let d = g.u(0.8, 1.0);
        g.bar(1, 0.1, d);
    }
}

fn config_regression(g: &mut Gen) {
    g.essential();
    g.small_h0(5, 0.05, 0.15);
    let d = g.u(0.9, 1.1);
    g.bar(2, 0.3, d);
    for _ in 0..2 {
        let d = g.u(0.3, 0.4);
        g.bar(1, 0.2, d);
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown scenario {name:?}; known: {}", SCENARIOS.join(", "))]
pub struct UnknownScenario {
    pub name: String,
}

/// An endless stream of labelled anomalies.
pub struct Scenario {
    gen: Gen,
    only: Option<usize>,
    drift: bool,
    i: usize,
}

/// The stream for `name`; the same `(name, seed, noise)` always yields the same events.
pub fn scenario(name: &str, seed: u64, noise: f64) -> Result<Scenario, UnknownScenario> {
    let only = ARCHETYPES.iter().position(|a| a.pattern == name);
    if only.is_none() && name != "mixed" && name != "drift" {
        return Err(UnknownScenario {
            name: name.to_string(),
        });
    }
    let gen = Gen {
        rng: SmallRng::seed_from_u64(seed),
        noise: noise.clamp(0.0, 1.0),
        points: Vec::new(),
    };
    Ok(Scenario {
        gen,
        only,
        drift: name == "drift",
        i: 0,
    })
}

/// The route label an archetype's anomaly should get (the first step's agent type), by the routing
/// policy as documented (README "Routing policy", `semantic::routing`), written out here on its own so
/// that `aura eval` checks the router against the policy rather than against itself. Labels assume the
/// default `[semantic]` weights and thresholds.
///
/// Layer: the higher of the pattern's layer and the band of the base urgency, where base urgency is
/// `0.6 × severity + 0.4 × score` (severity LOW 0.25, MEDIUM 0.5, HIGH 0.75, CRITICAL 1), STRATEGIC from
/// 0.9 and TACTICAL from 0.6. Coordination: fan-out from two affected entities, otherwise the pattern's
/// pipeline (archetypes are drawn with confident shapes and moderate complexity, so neither consensus
/// nor hierarchical applies).
fn route_label(a: &Archetype, severity: Severity, score: f64, entities: usize) -> RouteLabel {
    let severity = match severity {
        Low => 0.25,
        Medium => 0.5,
        High => 0.75,
        Critical => 1.0,
    };
    let base_urgency = (0.6 * severity + 0.4 * score) / (0.6 + 0.4);
    let band = if base_urgency >= 0.9 {
        Layer::Strategic
    } else if base_urgency >= 0.6 {
        Layer::Tactical
    } else {
        Layer::Operational
    };
    let coordination = if entities >= 2 {
        Coordination::FanOut
    } else {
        Coordination::Pipeline
    };
    RouteLabel {
        agent_type: a.first_agent,
        coordination,
        layer: a.layer.max(band),
    }
}

impl Iterator for Scenario {
    type Item = LabelledAnomaly;

    fn next(&mut self) -> Option<LabelledAnomaly> {
        let g = &mut self.gen;
        let which = self
            .only
            .unwrap_or_else(|| g.rng.random_range(0..ARCHETYPES.len()));
        let a = &ARCHETYPES[which];
        let drifted = self.drift && self.i >= DRIFT_AFTER && a.pattern == "memory-leak";
        g.points.clear();
        (if drifted { DRIFTED_LEAK } else { a.shape })(g);
        let noise = g.noise;
        // The Betti numbers the detector reports: what the clean shape has, read before noise is added.
        let mut betti = vec![0i32; 3];
        for p in &g.points {
            if p.death - p.birth >= 0.3 {
                betti[p.dimension as usize] += 1;
            }
        }
        let scale = (noise * 0.7 * g.u(-1.0, 1.0)).exp();
        let mut points = std::mem::take(&mut g.points);
        for p in &mut points {
            let (jb, jd) = (
                1.0 + noise * 0.3 * g.u(-1.0, 1.0),
                1.0 + noise * 0.3 * g.u(-1.0, 1.0),
            );
            p.birth *= scale * jb;
            p.death = (p.death * scale * jd).max(p.birth);
        }
        // Spurious near-diagonal features, as real detectors report.
        for _ in 0..g.n(3, 3 + (noise * 15.0) as usize) {
            let dimension = [0, 0, 1, 1, 2][g.n(0, 4)];
            let (b, l) = (
                if dimension == 0 { 0.0 } else { g.u(0.0, 1.0) },
                g.u(0.0, 0.08 * (1.0 + noise)),
            );
            points.push(PersistencePoint {
                dimension,
                birth: b * scale,
                death: (b + l) * scale,
            });
        }
        let severity = a.severities[g.n(0, a.severities.len() - 1)];
        let entities: Vec<String> = (0..g.n(1, a.max_entities))
            .map(|e| format!("{}-entity-{e}", a.pattern))
            .collect();
        let mut tags: Vec<String> = a
            .tags
            .iter()
            .filter(|_| g.u(0.0, 1.0) < 0.8)
            .map(|t| t.to_string())
            .collect();
        if g.u(0.0, 1.0) < noise * 0.4 {
            let other = &ARCHETYPES[g.n(0, ARCHETYPES.len() - 1)];
            tags.push(other.tags[g.n(0, 2)].to_string());
        }
        let i = self.i;
        self.i += 1;
        let anomaly = TdaAnomaly {
            anomaly_id: format!("synthetic-{i}"),
            correlation_id: format!("{}-incident-{}", a.pattern, i / 20),
            source: format!("{}-svc-{}", a.pattern, g.n(0, 3)),
            detected_at: 1_700_000_000_000 + 100 * i as i64,
            anomaly_score: g.u(0.4, 0.95),
            severity,
            betti,
            diagram: points,
            signature: vec![],
            tags,
            attributes: [(
                "archetype".to_string(),
                if drifted {
                    "memory-leak-drifted"
                } else {
                    a.pattern
                }
                .to_string(),
            )]
            .into(),
            entities,
        };
        let route = route_label(a, severity, anomaly.anomaly_score, anomaly.entities.len());
        Some(LabelledAnomaly {
            anomaly,
            label: Label {
                pattern: a.pattern.to_string(),
                route: Some(route),
            },
        })
    }
}
