//! Online learning: confirmed `RoutingFeedback` moves the prototypes.
//!
//! Each pattern keeps a bounded kNN memory of prototype diagrams. A confirmed anomaly that was matched
//! correctly and sits close to one of its pattern's prototypes only refreshes that prototype's recency; one
//! that was missed or lies far from its pattern becomes a prototype itself, evicting the least recently
//! confirmed prototype when the pattern is at its bound. That is what lets a pattern whose shape drifts
//! follow it: the new shape is added on the first misses, and the old shape ages out. A pattern name never
//! seen before becomes a new pattern, triaged by an Analyst until someone gives it a workflow. Every change
//! bumps the library version, which is part of every route cache key.
//!
//! Each update is bounded, so one noisy source cannot take a pattern over: one piece of feedback adds or
//! replaces at most one prototype of one pattern, and the prototypes learned from one anomaly source may
//! fill at most `max_source_share` of a pattern's `max_prototypes` (at least one). A source at its share
//! replaces its own least recently confirmed prototype, never another source's or a shipped one.

use super::config::SemanticConfig;
use super::diagram::clean;
use super::embedding::embed;
use super::matcher::Compiled;
use super::patterns::{from_points, PatternSpec, StepSpec};
use crate::model::{AgentType, Coordination, Layer, TdaAnomaly};

/// When each prototype was last added or confirmed, in feedback ticks, and which anomaly source it was
/// learned from (empty for shipped or fitted prototypes), parallel to the library.
#[derive(Debug, Clone, Default)]
pub struct Recency {
    tick: u64,
    last: Vec<Vec<u64>>,
    sources: Vec<Vec<String>>,
}

impl Recency {
    /// Prototypes loaded from a file all start equally old.
    pub fn new(c: &Compiled) -> Self {
        let mut r = Recency::default();
        r.sync(c);
        r
    }

    /// Makes the shape match the library (new patterns or prototypes start at the current tick).
    pub fn sync(&mut self, c: &Compiled) {
        let tick = self.tick;
        self.last.resize(c.library.patterns.len(), Vec::new());
        self.sources.resize(c.library.patterns.len(), Vec::new());
        for ((v, s), p) in self
            .last
            .iter_mut()
            .zip(&mut self.sources)
            .zip(&c.library.patterns)
        {
            v.resize(p.prototypes.len(), tick);
            s.resize(p.prototypes.len(), String::new());
        }
    }

    /// The source each prototype of pattern `i` was learned from (empty: shipped or fitted).
    pub fn sources(&self, i: usize) -> &[String] {
        self.sources.get(i).map_or(&[], Vec::as_slice)
    }

    /// Sets the provenance of pattern `i` (restored from a changelog); the library must already hold it.
    pub fn set_sources(&mut self, i: usize, sources: &[String]) {
        let tick = self.tick;
        if let (Some(s), Some(v)) = (self.sources.get_mut(i), self.last.get_mut(i)) {
            *s = sources.to_vec();
            v.resize(s.len(), tick);
        }
    }
}

/// What one piece of feedback did.
#[derive(Debug)]
pub enum LearnOutcome {
    Unchanged,
    /// The new library (version already bumped) and the index of the one pattern that changed.
    Changed(super::patterns::PatternLibrary, usize),
}

/// A new pattern learned from data: an Analyst triages it until it gets a workflow of its own.
pub fn new_pattern(name: &str, tags: &[String]) -> PatternSpec {
    let mut hints: Vec<String> = Vec::new();
    for t in tags.iter().take(8) {
        if !hints.contains(t) {
            hints.push(t.clone());
        }
    }
    PatternSpec {
        name: name.to_string(),
        description: "learned from labelled data; no workflow assigned yet".to_string(),
        tags: hints,
        capabilities: vec![],
        workflow: "triage".to_string(),
        coordination: Coordination::Pipeline,
        layer: Layer::Operational,
        steps: vec![StepSpec {
            name: "triage".into(),
            agent_type: AgentType::Analyst,
            capabilities: vec![],
        }],
        radius: None,
        prototypes: vec![],
    }
}

/// Learns from one confirmed example. `pattern` must not be [`super::patterns::UNKNOWN`] (ignored if so).
pub fn learn_one(
    current: &Compiled,
    recency: &mut Recency,
    pattern: &str,
    anomaly: &TdaAnomaly,
    cfg: &SemanticConfig,
) -> LearnOutcome {
    if pattern.is_empty() || pattern == super::patterns::UNKNOWN || anomaly.diagram.is_empty() {
        return LearnOutcome::Unchanged;
    }
    recency.sync(current);
    recency.tick += 1;
    let tick = recency.tick;
    let u = current.transform(&embed(&clean(&anomaly.diagram)));
    let mut library = current.library.clone();
    library.version += 1;
    let Some(pi) = current.pattern_index(pattern) else {
        let mut p = new_pattern(pattern, &anomaly.tags);
        p.prototypes.push(from_points(&anomaly.diagram));
        library.patterns.push(p);
        recency.last.push(vec![tick]);
        recency.sources.push(vec![anomaly.source.clone()]);
        let i = library.patterns.len() - 1;
        return LearnOutcome::Changed(library, i);
    };
    let m = current.match_point(&u, &anomaly.tags, None, &cfg.matcher, None);
    let (own_distance, own_proto) = current.pattern_distances(&u, None)[pi];
    if m.best == Some(pi) && own_distance <= cfg.learning.refresh_fraction * current.radius[pi] {
        if own_proto != usize::MAX {
            let (_, j) = current.owner[own_proto];
            recency.last[pi][j as usize] = tick;
        }
        return LearnOutcome::Unchanged;
    }
    let spec = &mut library.patterns[pi];
    let (ages, sources) = (&mut recency.last[pi], &mut recency.sources[pi]);
    let own: Vec<usize> = (0..sources.len())
        .filter(|&j| sources[j] == anomaly.source)
        .collect();
    let evict = if own.len() >= source_cap(&cfg.learning) {
        own.into_iter().min_by_key(|&j| ages[j])
    } else if spec.prototypes.len() >= cfg.learning.max_prototypes {
        (0..ages.len()).min_by_key(|&j| ages[j])
    } else {
        None
    };
    if let Some(j) = evict {
        spec.prototypes.remove(j);
        ages.remove(j);
        sources.remove(j);
    }
    spec.prototypes.push(from_points(&anomaly.diagram));
    ages.push(tick);
    sources.push(anomaly.source.clone());
    LearnOutcome::Changed(library, pi)
}

/// Most prototypes of one pattern that one anomaly source may have taught (at least one).
pub fn source_cap(cfg: &super::config::LearningConfig) -> usize {
    ((cfg.max_source_share * cfg.max_prototypes as f64).floor() as usize).max(1)
}
