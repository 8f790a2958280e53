//! [`Engine`]: the entry point the stream processor calls once per anomaly.
//!
//! The engine takes `&self` everywhere and is `Send + Sync`, so one instance serves every partition task
//! without a lock around it. Its mutable parts are narrow: the compiled library sits behind an
//! `RwLock<Arc<_>>` that readers hold only long enough to clone the `Arc` (learning swaps in a new one), the
//! running baselines are sharded mutexes, and the router owns the registry, the flags and the moka cache.
//!
//! The engine keeps two libraries: the shipped one it was made with, and the learned one that feedback
//! changes and the patterns changelog restores ([`super::learned`]). Routing uses the learned one unless
//! the flag `patterns.shipped` rolls it back.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::complexity::{self, Complexity};
use super::config::SemanticConfig;
use super::diagram::clean;
use super::embedding::embed_with_entropy;
use super::features::Features;
use super::learned::{LearnedPattern, FLAG_SHIPPED};
use super::learning::{self, LearnOutcome, Recency};
use super::matcher::{Compiled, MatchResult};
use super::patterns::PatternLibrary;
use super::routing::{Route, RouteInputs, Router, RouterStats};
use super::sliced_wasserstein::SlicedWasserstein;
use super::urgency::{self, BaselineSource, Baselines, Urgency, UrgencyInputs};
use crate::model::{
    AgentRegistration, AgentStatus, AgentType, FeatureFlag, RoutingFeedback, Severity, TdaAnomaly,
    TdaContext,
};

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
    /// The learned library (the shipped one until feedback or the changelog changes it).
    compiled: RwLock<Arc<Compiled>>,
    /// The library the engine was made with, for the `patterns.shipped` rollback.
    shipped: RwLock<Arc<Compiled>>,
    rolled_back: AtomicBool,
    recency: Mutex<Recency>,
    baselines: Baselines,
    router: Router,
    sw: SlicedWasserstein,
}

impl Engine {
    /// `config` should have passed [`SemanticConfig::validate`].
    pub fn new(config: SemanticConfig, library: PatternLibrary) -> Self {
        let compiled = Arc::new(Compiled::new(library));
        Engine {
            recency: Mutex::new(Recency::new(&compiled)),
            shipped: RwLock::new(compiled.clone()),
            rolled_back: AtomicBool::new(false),
            compiled: RwLock::new(compiled),
            baselines: Baselines::new(config.urgency.baseline_max_sources),
            router: Router::new(config.routing.clone()),
            sw: SlicedWasserstein::new(config.matcher.sw_directions),
            config,
        }
    }

    pub fn config(&self) -> &SemanticConfig {
        &self.config
    }

    /// The compiled library routing uses now (cheap: an `Arc` clone): the learned one, or the shipped
    /// one while `patterns.shipped` is on.
    pub fn compiled(&self) -> Arc<Compiled> {
        if self.rolled_back.load(Ordering::Acquire) {
            return self
                .shipped
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
        }
        self.learned()
    }

    fn learned(&self) -> Arc<Compiled> {
        self.compiled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The learned library (what feedback taught, whether or not routing uses it now).
    pub fn library(&self) -> PatternLibrary {
        self.learned().library.clone()
    }

    /// The version of the library routing uses now.
    pub fn library_version(&self) -> u64 {
        self.compiled().version()
    }

    /// Whether `patterns.shipped` has rolled routing back to the shipped library.
    pub fn rolled_back(&self) -> bool {
        self.rolled_back.load(Ordering::Acquire)
    }

    /// Replaces the library, shipped and learned (a reload); invalidates cached routes.
    pub fn replace_library(&self, library: PatternLibrary) {
        let compiled = Arc::new(Compiled::new(library));
        *self.recency.lock().unwrap_or_else(|e| e.into_inner()) = Recency::new(&compiled);
        *self.shipped.write().unwrap_or_else(|e| e.into_inner()) = compiled.clone();
        *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = compiled;
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

    /// `patterns.shipped` switches routing between the shipped and the learned library; every other flag
    /// goes to the router.
    pub fn on_flag(&self, flag: &FeatureFlag) {
        if flag.name == FLAG_SHIPPED {
            self.rolled_back.store(flag.enabled, Ordering::Release);
        }
        self.router.on_flag(flag);
    }

    /// A tombstone on `agent.registry`.
    pub fn on_deregistration(&self, agent_id: &str) {
        self.router.on_deregistration(agent_id);
    }

    /// A tombstone on `orchestration.flags`.
    pub fn remove_flag(&self, name: &str) {
        self.router.remove_flag(name);
    }

    /// Drops agents whose heartbeat is older than `timeout_ms`; returns their ids.
    pub fn expire_registrations(&self, now_ms: i64, timeout_ms: i64) -> Vec<String> {
        self.router.expire_registrations(now_ms, timeout_ms)
    }

    /// Live agents of one type with their capacity.
    pub fn live_agents(&self, t: AgentType) -> Vec<(String, i32)> {
        self.router.live_agents(t)
    }

    /// Agents by type and status, as this instance sees the registry.
    pub fn registry_census(&self) -> Vec<(AgentType, AgentStatus, i64)> {
        self.router.registry_census()
    }

    /// Whether flag `name` applies to `key`; `None` when there is no such flag.
    pub fn flag_state(&self, name: &str, key: &str) -> Option<bool> {
        self.router.flag_state(name, key)
    }

    /// Cached-route invalidations so far (registry, flag and library changes).
    pub fn route_invalidations(&self) -> u64 {
        self.router.invalidations()
    }

    /// Online learning from confirmed feedback (non-empty `confirmed_by`) that names a pattern and carries
    /// the anomaly. Returns whether the prototypes changed (and so the library version and the route cache).
    pub fn on_feedback(&self, fb: &RoutingFeedback) -> bool {
        self.learn(fb).is_some()
    }

    /// Like [`Engine::on_feedback`], returning the pattern that changed, as the changelog records it.
    pub fn learn(&self, fb: &RoutingFeedback) -> Option<LearnedPattern> {
        let (Some(pattern), Some(anomaly)) = (&fb.pattern, &fb.anomaly) else {
            return None;
        };
        // Feedback nobody confirmed is a guess; learning from guesses would let errors reinforce themselves.
        if fb.confirmed_by.trim().is_empty() {
            return None;
        }
        if !self.learning_on(&anomaly.source) {
            return None;
        }
        // Read the library under the learning lock, so concurrent feedback never learns from a stale copy.
        let mut recency = self.recency.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.learned();
        if current.pattern_index(pattern).is_none() {
            let shipped = self
                .shipped
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .library
                .patterns
                .len();
            let created = current.library.patterns.len().saturating_sub(shipped);
            if created >= self.config.learning.max_new_patterns {
                return None;
            }
        }
        match learning::learn_one(&current, &mut recency, pattern, anomaly, &self.config) {
            LearnOutcome::Unchanged => None,
            LearnOutcome::Changed(library, i) => {
                let learned = LearnedPattern {
                    library_version: library.version,
                    sources: recency.sources(i).to_vec(),
                    pattern: library.patterns[i].clone(),
                };
                self.install(Compiled::new(library), &mut recency);
                Some(learned)
            }
        }
    }

    /// Whether feedback about anomalies from `source` is learned from (config and `semantic.learning`).
    pub fn learning_on(&self, source: &str) -> bool {
        self.config.learning.enabled && self.router.flag_on(FLAG_LEARNING, source)
    }

    /// Pattern `name` as it is now in the learned library, as the changelog records it; `None` when the
    /// library has no such pattern.
    pub fn learned_pattern(&self, name: &str) -> Option<LearnedPattern> {
        let recency = self.recency.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.learned();
        let i = current.pattern_index(name)?;
        Some(LearnedPattern {
            library_version: current.version(),
            sources: recency.sources(i).to_vec(),
            pattern: current.library.patterns[i].clone(),
        })
    }

    /// Applies one record of the patterns changelog (restore, or another task's learning): the pattern
    /// replaces its namesake, or joins the library; a tombstone (`None`) resets `name` to its shipped form
    /// or removes it when it was learned. Returns whether the library changed. Applying a record this
    /// engine wrote itself changes nothing.
    pub fn apply_learned(&self, name: &str, record: Option<&LearnedPattern>) -> bool {
        let mut recency = self.recency.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.learned();
        let mut library = current.library.clone();
        let at = library.patterns.iter().position(|p| p.name == name);
        let (target, sources) = match record {
            Some(r) => (Some(r.pattern.clone()), r.sources.clone()),
            None => (
                self.shipped
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .library
                    .pattern(name)
                    .cloned(),
                vec![],
            ),
        };
        let unchanged = match (at, &target) {
            (Some(i), Some(t)) => library.patterns[i] == *t && recency.sources(i) == sources,
            (None, None) => true,
            _ => false,
        };
        if unchanged {
            return false;
        }
        let i = match (at, target) {
            (Some(i), Some(t)) => {
                library.patterns[i] = t;
                Some(i)
            }
            (None, Some(t)) => {
                library.patterns.push(t);
                Some(library.patterns.len() - 1)
            }
            (Some(i), None) => {
                library.patterns.remove(i);
                // Provenance is parallel to the library: rebuild it without the removed pattern.
                *recency = Recency::new(&Compiled::new(library.clone()));
                None
            }
            (None, None) => None,
        };
        let writer = record.map_or(0, |r| r.library_version);
        library.version = (library.version + 1).max(writer);
        let compiled = Compiled::new(library);
        recency.sync(&compiled);
        if let Some(i) = i {
            recency.set_sources(i, &sources);
        }
        self.install(compiled, &mut recency);
        true
    }

    fn install(&self, compiled: Compiled, recency: &mut Recency) {
        recency.sync(&compiled);
        *self.compiled.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
        self.router.invalidate();
    }

    pub fn assess(
        &self,
        anomaly: &TdaAnomaly,
        context: Option<&TdaContext>,
        now_ms: i64,
    ) -> Assessment {
        let cfg = &self.config;
        let diagram = clean(&anomaly.diagram);
        let features = Features::compute(&diagram, &anomaly.betti, &cfg.features);
        let lib = self.compiled();
        let embedding = embed_with_entropy(&diagram, features.dims.map(|d| d.entropy));
        let m = lib.match_embedding(
            &embedding,
            &anomaly.tags,
            context.map(|c| &c.pattern_confidence),
            &cfg.matcher,
        );
        let complexity = complexity::complexity(&features, anomaly, &cfg.complexity);
        let inputs = UrgencyInputs {
            context,
            baselines: &self.baselines,
            sw: &self.sw,
            now_ms,
        };
        let urgency = urgency::urgency(&features, anomaly, &inputs, &cfg.urgency);
        let decision = self.router.route(
            &RouteInputs {
                pattern: m.best.map(|i| (i, &lib.library.patterns[i])),
                confidence: m.confidence,
                urgency: urgency.value,
                base_urgency: urgency.base,
                complexity: complexity.value,
                entities: anomaly.entities.len(),
                source: &anomaly.source,
            },
            lib.version(),
        );
        let mut explanation = String::with_capacity(512);
        explain(
            &mut explanation,
            &lib,
            &m,
            &features,
            anomaly,
            &complexity,
            &urgency,
        );
        explanation.push_str("; route: ");
        explanation.push_str(&decision.why);
        let _ = write!(explanation, "; pattern library v{}", lib.version());
        if self.rolled_back() {
            explanation.push_str(" (shipped: learning rolled back by flag patterns.shipped)");
        }
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

/// Appends text and two-decimal numbers. Explanations are built for every anomaly, and `{:.2}` float
/// formatting was the largest single cost of `assess`; integer formatting of `round(100·x)` is several
/// times cheaper and prints the same digits.
struct Text<'a>(&'a mut String);

impl Text<'_> {
    fn s(&mut self, s: &str) -> &mut Self {
        self.0.push_str(s);
        self
    }
    fn f(&mut self, x: f64) -> &mut Self {
        if !x.is_finite() || x.abs() >= 1e15 {
            let _ = write!(self.0, "{x}");
            return self;
        }
        let r = (x * 100.0).round() as i64;
        if r < 0 {
            self.0.push('-');
        }
        let r = r.unsigned_abs();
        let mut digits = [0u8; 20];
        let (mut i, mut whole) = (digits.len(), r / 100);
        loop {
            i -= 1;
            digits[i] = b'0' + (whole % 10) as u8;
            whole /= 10;
            if whole == 0 {
                break;
            }
        }
        for &b in &digits[i..] {
            self.0.push(b as char);
        }
        self.0.push('.');
        self.0.push((b'0' + (r % 100 / 10) as u8) as char);
        self.0.push((b'0' + (r % 10) as u8) as char);
        self
    }
    fn d(&mut self, v: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "{v}");
        self
    }
}

fn explain(
    out: &mut String,
    lib: &Compiled,
    m: &MatchResult,
    f: &Features,
    a: &TdaAnomaly,
    c: &Complexity,
    u: &Urgency,
) {
    let mut t = Text(out);
    let nearest = lib.name(m.nearest);
    match m.best {
        Some(_) => {
            t.s("pattern ")
                .s(nearest)
                .s(" (confidence ")
                .f(m.confidence)
                .s(", raw ")
                .f(m.raw_confidence);
            t.s("; distance ")
                .f(m.distance)
                .s(" within radius ")
                .f(m.radius);
            if let Some((r, rc)) = m.runner_up {
                t.s("; runner-up ").s(lib.name(r)).s(" ").f(rc);
            }
            t.s(")");
        }
        None => {
            t.s("unknown: nearest pattern ")
                .s(nearest)
                .s(" at distance ")
                .f(m.distance);
            t.s(" is outside its radius ")
                .f(m.radius)
                .s(", triage by an Analyst");
        }
    }
    t.s("; complexity ")
        .f(c.value)
        .s(" (entropy ")
        .f(c.entropy)
        .s(", significant ")
        .f(c.significant);
    t.s(", entities ")
        .f(c.entities)
        .s(", tags ")
        .f(c.tags)
        .s(")");
    let d = &u.departure;
    let severity = match a.severity {
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    };
    let baseline = match d.source {
        BaselineSource::Context => "context",
        BaselineSource::Running => "running",
        BaselineSource::WarmingUp => "warming-up",
    };
    t.s("; urgency ")
        .f(u.value)
        .s(" = base ")
        .f(u.base)
        .s(" (severity ")
        .s(severity)
        .s(" ")
        .f(u.severity);
    t.s(", score ")
        .f(a.anomaly_score)
        .s(") x amplification ")
        .f(u.amplification)
        .s(" (departure ")
        .f(d.value);
    t.s(" vs ")
        .s(baseline)
        .s(" baseline: entropy ")
        .f(d.entropy)
        .s(", persistence ")
        .f(d.persistence);
    t.s(", betti ")
        .f(d.betti)
        .s(", diagram ")
        .f(d.diagram)
        .s(") x decay ")
        .f(u.decay)
        .s(" (age ")
        .d(u.age_ms)
        .s(" ms)");
    if f.betti_mismatch > 0 {
        t.s("; betti reported ")
            .d(format_args!("{:?}", a.betti))
            .s(" but diagram implies ")
            .d(format_args!("{:?}", f.diagram_betti));
    }
    if f.dropped > 0 {
        t.s("; ")
            .d(f.dropped)
            .s(" malformed diagram points dropped");
    }
}
