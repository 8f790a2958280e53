//! [`Engine`]: the entry point the stream processor calls once per anomaly.
//!
//! The engine takes `&self` everywhere and is `Send + Sync`, so one instance serves every partition task
//! without a lock around it. Its mutable parts are narrow: the compiled library sits behind an
//! `RwLock<Arc<_>>` that readers hold only long enough to clone the `Arc` (learning swaps in a new one), the
//! running baselines are sharded mutexes, and the router owns the registry, the flags and the moka cache.

use std::fmt::Write;
use std::sync::{Arc, Mutex, RwLock};

use super::config::SemanticConfig;
use super::diagram::clean;
use super::embedding::embed;
use super::features::Features;
use super::learning::{self, LearnOutcome, Recency};
use super::matcher::{Compiled, MatchResult};
use super::patterns::PatternLibrary;
use super::routing::{Route, RouteInputs, Router, RouterStats};
use super::scoring::{self, Baselines, Complexity, Urgency, UrgencyInputs};
use super::sliced_wasserstein::SlicedWasserstein;
use crate::model::{AgentRegistration, FeatureFlag, RoutingFeedback, TdaAnomaly, TdaContext};

/// Turns learning off for sources outside its rollout; absent means on.
pub const FLAG_LEARNING: &str = "semantic.learning";

/// What the engine concluded about one anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The matched pattern; None means unknown (routed to an Analyst for triage).
    pub pattern_id: Option<String>,
    /// Calibrated confidence in [0, 1]; 0 for unknown.
    pub confidence: f64,
    /// The second-best pattern and its confidence; for unknown, the nearest pattern.
    pub runner_up: Option<(String, f64)>,
    pub complexity: f64,
    pub urgency: f64,
    pub route: Route,
    /// Why this route, with every score part.
    pub explanation: String,
    /// The library version the match used.
    pub library_version: u64,
}

pub struct Engine {
    config: SemanticConfig,
    compiled: RwLock<Arc<Compiled>>,
    recency: Mutex<Recency>,
    baselines: Baselines,
    router: Router,
    sw: SlicedWasserstein,
}

impl Engine {
    /// `config` should have passed [`SemanticConfig::validate`].
    pub fn new(config: SemanticConfig, library: PatternLibrary) -> Self {
        let compiled = Compiled::new(library);
        Engine {
            recency: Mutex::new(Recency::new(&compiled)),
            compiled: RwLock::new(Arc::new(compiled)),
            baselines: Baselines::new(config.urgency.baseline_max_sources),
            router: Router::new(config.routing.clone()),
            sw: SlicedWasserstein::new(config.matcher.sw_directions),
            config,
        }
    }

    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    /// The current compiled library (cheap: an `Arc` clone).
    pub fn compiled(&self) -> Arc<Compiled> {
        self.compiled.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current library, e.g. to write to a changelog after learning.
    pub fn library(&self) -> PatternLibrary {
        self.compiled().library.clone()
    }

    pub fn library_version(&self) -> u64 {
        self.compiled().version()
    }

    /// Replaces the library (restore from a changelog, or a reload); invalidates cached routes.
    pub fn replace_library(&self, library: PatternLibrary) {
        let compiled = Compiled::new(library);
        *self.recency.lock().unwrap_or_else(|e| e.into_inner()) = Recency::new(&compiled);
        *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
        self.router.invalidate();
    }

    pub fn router_stats(&self) -> RouterStats {
        self.router.stats()
    }

    pub fn sliced_wasserstein(&self) -> &SlicedWasserstein {
        &self.sw
    }

    pub fn on_registration(&self, reg: &AgentRegistration) {
        self.router.on_registration(reg);
    }

    pub fn on_flag(&self, flag: &FeatureFlag) {
        self.router.on_flag(flag);
    }

    /// Online learning from confirmed feedback that names a pattern and carries the anomaly. Returns
    /// whether the prototypes changed (and so the library version and the route cache).
    pub fn on_feedback(&self, fb: &RoutingFeedback) -> bool {
        let (Some(pattern), Some(anomaly)) = (&fb.pattern, &fb.anomaly) else { return false };
        if !self.config.learning.enabled || !self.router.flag_on(FLAG_LEARNING, &anomaly.source) {
            return false;
        }
        let current = self.compiled();
        let mut recency = self.recency.lock().unwrap_or_else(|e| e.into_inner());
        match learning::learn_one(&current, &mut recency, pattern, anomaly, &self.config) {
            LearnOutcome::Unchanged => false,
            LearnOutcome::Changed(library) => {
                let compiled = Compiled::new(library);
                recency.sync(&compiled);
                *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
                self.router.invalidate();
                true
            }
        }
    }

    pub fn assess(&self, anomaly: &TdaAnomaly, context: Option<&TdaContext>, now_ms: i64) -> Assessment {
        let cfg = &self.config;
        let diagram = clean(&anomaly.diagram);
        let features = Features::compute(&diagram, &anomaly.betti, &cfg.features);
        let lib = self.compiled();
        let m = lib.match_embedding(&embed(&diagram), &anomaly.tags, context.map(|c| &c.pattern_confidence), &cfg.matcher);
        let complexity = scoring::complexity(&features, anomaly, &cfg.complexity);
        let inputs = UrgencyInputs { context, baselines: &self.baselines, sw: &self.sw, now_ms };
        let urgency = scoring::urgency(&features, anomaly, &inputs, &cfg.urgency);
        let decision = self.router.route(
            &RouteInputs {
                pattern: m.best.map(|i| (i, &lib.library.patterns[i])),
                confidence: m.confidence,
                urgency: urgency.value,
                complexity: complexity.value,
                entities: anomaly.entities.len(),
                source: &anomaly.source,
            },
            lib.version(),
        );
        let mut explanation = String::with_capacity(512);
        explain(&mut explanation, &lib, &m, &features, anomaly, &complexity, &urgency);
        explanation.push_str("; route: ");
        explanation.push_str(&decision.why);
        Assessment {
            pattern_id: m.best.map(|i| lib.name(i).to_string()),
            confidence: m.confidence,
            runner_up: m.runner_up.map(|(i, c)| (lib.name(i).to_string(), c)),
            complexity: complexity.value,
            urgency: urgency.value,
            route: decision.route.clone(),
            explanation,
            library_version: lib.version(),
        }
    }
}

fn explain(out: &mut String, lib: &Compiled, m: &MatchResult, f: &Features, a: &TdaAnomaly, c: &Complexity, u: &Urgency) {
    // Writing to a String cannot fail.
    let nearest = lib.name(m.nearest);
    match m.best {
        Some(_) => {
            let _ = write!(out, "pattern {nearest} (confidence {:.2}, raw {:.2}; distance {:.2} within radius {:.2}", m.confidence, m.raw_confidence, m.distance, m.radius);
            if let Some((r, rc)) = m.runner_up {
                let _ = write!(out, "; runner-up {} {rc:.2}", lib.name(r));
            }
            out.push(')');
        }
        None => {
            let _ = write!(out, "unknown: nearest pattern {nearest} at distance {:.2} is outside its radius {:.2}, triage by an Analyst", m.distance, m.radius);
        }
    }
    let _ = write!(
        out,
        "; complexity {:.2} (entropy {:.2}, significant {:.2}, entities {:.2}, tags {:.2})",
        c.value, c.entropy, c.significant, c.entities, c.tags
    );
    let d = &u.departure;
    let _ = write!(
        out,
        "; urgency {:.2} = base {:.2} (severity {:?} {:.2}, score {:.2}) x amplification {:.2} (departure {:.2} vs {:?} baseline: entropy {:.2}, persistence {:.2}, betti {:.2}, diagram {:.2}) x decay {:.2} (age {} ms)",
        u.value, u.base, a.severity, u.severity, a.anomaly_score, u.amplification, d.value, d.source, d.entropy, d.persistence, d.betti, d.diagram, u.decay, u.age_ms
    );
    if f.betti_mismatch > 0 {
        let _ = write!(out, "; betti reported {:?} but diagram implies {:?}", a.betti, f.diagram_betti);
    }
    if f.dropped > 0 {
        let _ = write!(out, "; {} malformed diagram points dropped", f.dropped);
    }
}

