//! `[semantic]` configuration: every weight and threshold of the engine, with defaults that work out of the
//! box. Parsed with `deny_unknown_fields`; [`SemanticConfig::validate`] reports every problem at once.

use serde::{Deserialize, Serialize};

/// The semantic engine's configuration (the `[semantic]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SemanticConfig {
    /// How features are extracted from a diagram.
    pub features: FeatureConfig,
    /// Pattern matching.
    pub matcher: MatcherConfig,
    /// Semantic complexity.
    pub complexity: ComplexityConfig,
    /// Urgency, its baseline amplification and its decay.
    pub urgency: UrgencyConfig,
    /// Routing rules and the route cache.
    pub routing: RoutingConfig,
    /// Online learning from confirmed feedback.
    pub learning: LearningConfig,
}

/// Feature extraction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureConfig {
    /// A finite point is significant when its lifetime exceeds this fraction of the diagram's largest
    /// finite lifetime (scale-free), in [0, 1].
    pub significance_relative: f64,
    /// ...and also exceeds this absolute lifetime, in filtration units (>= 0; 0 disables the floor).
    pub significance_absolute: f64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            significance_relative: 0.25,
            significance_absolute: 0.0,
        }
    }
}

/// Pattern matching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatcherConfig {
    /// How much a full tag-hint overlap shrinks a pattern's distance, in [0, 1).
    pub tag_weight: f64,
    /// Weight of the source's prior pattern confidence (`TdaContext.pattern_confidence`) in the match
    /// logits, >= 0; 0 ignores priors.
    pub prior_weight: f64,
    /// Multiplies every pattern's learned radius; an anomaly farther than that from every prototype is
    /// `unknown`. > 0.
    pub radius_factor: f64,
    /// Directions of the sliced Wasserstein distance used for baseline departure and audits, >= 1.
    pub sw_directions: usize,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            tag_weight: 0.15,
            prior_weight: 0.0,
            radius_factor: 1.0,
            sw_directions: 16,
        }
    }
}

/// Weights of the complexity parts; normalized by their sum, so only ratios matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplexityWeights {
    /// Normalized persistent entropy, in [0, 1].
    pub entropy: f64,
    /// Number of significant features, in [0, 1].
    pub significant: f64,
    /// Number of affected entities, in [0, 1].
    pub entities: f64,
    /// Number of distinct tags, in [0, 1].
    pub tags: f64,
}

impl Default for ComplexityWeights {
    fn default() -> Self {
        ComplexityWeights {
            entropy: 0.3,
            significant: 0.3,
            entities: 0.25,
            tags: 0.15,
        }
    }
}

/// Semantic complexity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplexityConfig {
    /// Weights of the parts.
    pub weights: ComplexityWeights,
    /// Significant features at which that part reaches 1 − 1/e, > 0.
    pub significant_scale: f64,
    /// Affected entities at which that part saturates to 1, >= 2.
    pub entity_cap: u32,
    /// Distinct tags at which that part saturates to 1, >= 1.
    pub tag_cap: u32,
}

impl Default for ComplexityConfig {
    fn default() -> Self {
        ComplexityConfig {
            weights: ComplexityWeights::default(),
            significant_scale: 4.0,
            entity_cap: 8,
            tag_cap: 8,
        }
    }
}

/// Weights of the base urgency; normalized by their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrgencyWeights {
    /// Severity (LOW 0.25, MEDIUM 0.5, HIGH 0.75, CRITICAL 1), in [0, 1].
    pub severity: f64,
    /// The detector's anomaly score, in [0, 1].
    pub score: f64,
}

impl Default for UrgencyWeights {
    fn default() -> Self {
        UrgencyWeights {
            severity: 0.6,
            score: 0.4,
        }
    }
}

/// Weights of the parts of the departure from the source's baseline; normalized by their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DepartureWeights {
    /// Change in normalized persistent entropy, in [0, 1].
    pub entropy: f64,
    /// Relative change in total persistence, in [0, 1].
    pub persistence: f64,
    /// Change in Betti numbers, in [0, 1].
    pub betti: f64,
    /// Sliced Wasserstein distance to the baseline diagram relative to its total persistence, in [0, 1];
    /// costs a distance computation per anomaly when > 0 and the context has a diagram.
    pub diagram: f64,
}

impl Default for DepartureWeights {
    fn default() -> Self {
        DepartureWeights {
            entropy: 1.0,
            persistence: 1.0,
            betti: 1.0,
            diagram: 0.0,
        }
    }
}

/// Urgency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UrgencyConfig {
    /// Weights of the base urgency.
    pub weights: UrgencyWeights,
    /// Weights of the departure parts.
    pub departure: DepartureWeights,
    /// Urgency is multiplied by `1 + amplification × departure`, >= 0.
    pub amplification: f64,
    /// Age at which urgency has decayed to half, in milliseconds, > 0.
    pub half_life_ms: i64,
    /// Urgency never decays below this fraction of its undecayed value, in [0, 1].
    pub decay_floor: f64,
    /// Smoothing factor of the running per-source baseline used when `tda.context` has none, in (0, 1].
    pub baseline_alpha: f64,
    /// Anomalies a running baseline must have seen before it amplifies urgency, >= 1.
    pub baseline_min_samples: u32,
    /// Sources tracked by running baselines; beyond it, arbitrary sources are forgotten, >= 1.
    pub baseline_max_sources: usize,
}

impl Default for UrgencyConfig {
    fn default() -> Self {
        UrgencyConfig {
            weights: UrgencyWeights::default(),
            departure: DepartureWeights::default(),
            amplification: 0.5,
            half_life_ms: 300_000,
            decay_floor: 0.2,
            baseline_alpha: 0.1,
            baseline_min_samples: 5,
            baseline_max_sources: 100_000,
        }
    }
}

/// Routing rules and the route cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Consensus when urgency is at least this..., in [0, 1].
    pub consensus_urgency: f64,
    /// ...and confidence is below this, in [0, 1].
    pub consensus_confidence: f64,
    /// Hierarchical when complexity is above this, in [0, 1].
    pub hierarchical_complexity: f64,
    /// Fan-out when at least this many entities are affected, >= 2.
    pub fan_out_entities: u32,
    /// Layer STRATEGIC from this urgency, in [0, 1].
    pub strategic_urgency: f64,
    /// Layer TACTICAL from this urgency (below: the pattern's layer), in [0, 1], <= strategic_urgency.
    pub tactical_urgency: f64,
    /// Route cache time-to-live in milliseconds, > 0.
    pub cache_ttl_ms: u64,
    /// Route cache entries, >= 1.
    pub cache_capacity: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            consensus_urgency: 0.8,
            consensus_confidence: 0.6,
            hierarchical_complexity: 0.8,
            fan_out_entities: 2,
            strategic_urgency: 0.9,
            tactical_urgency: 0.6,
            cache_ttl_ms: 60_000,
            cache_capacity: 10_000,
        }
    }
}

/// Online learning from confirmed `RoutingFeedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningConfig {
    /// Learn from feedback at all.
    pub enabled: bool,
    /// Prototypes kept per pattern; the least recently confirmed is evicted beyond it, >= 1.
    pub max_prototypes: usize,
    /// A confirmed, correctly matched anomaly closer than this fraction of its pattern's radius to a
    /// prototype only refreshes that prototype instead of being added, in [0, 1].
    pub refresh_fraction: f64,
    /// Share of a pattern's `max_prototypes` that the anomalies of one source may have taught, so one
    /// noisy source cannot take a pattern over (at least one prototype per source), in (0, 1].
    pub max_source_share: f64,
    /// Patterns feedback may create beyond the shipped library; feedback naming yet another new
    /// pattern is ignored, so invented names cannot crowd the library, >= 0.
    pub max_new_patterns: usize,
}

impl Default for LearningConfig {
    fn default() -> Self {
        LearningConfig {
            enabled: true,
            max_prototypes: 16,
            refresh_fraction: 0.5,
            max_source_share: 0.25,
            max_new_patterns: 32,
        }
    }
}

struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, ok: bool, path: &str, rule: &str, got: impl std::fmt::Display) {
        if !ok {
            self.0.push(format!("semantic.{path}: {rule}, got {got}"));
        }
    }
    fn unit(&mut self, path: &str, v: f64) {
        self.check((0.0..=1.0).contains(&v), path, "must be in [0,1]", v);
    }
}

impl SemanticConfig {
    /// Every problem, each naming the path and the value; empty when the config is usable.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Problems(Vec::new());
        let f = &self.features;
        p.unit("features.significance_relative", f.significance_relative);
        p.check(
            f.significance_absolute >= 0.0,
            "features.significance_absolute",
            "must be >= 0",
            f.significance_absolute,
        );
        let m = &self.matcher;
        p.check(
            (0.0..1.0).contains(&m.tag_weight),
            "matcher.tag_weight",
            "must be in [0,1)",
            m.tag_weight,
        );
        p.check(
            m.prior_weight >= 0.0,
            "matcher.prior_weight",
            "must be >= 0",
            m.prior_weight,
        );
        p.check(
            m.radius_factor > 0.0,
            "matcher.radius_factor",
            "must be > 0",
            m.radius_factor,
        );
        p.check(
            m.sw_directions >= 1,
            "matcher.sw_directions",
            "must be >= 1",
            m.sw_directions,
        );
        let c = &self.complexity;
        let cw = &c.weights;
        for (name, v) in [
            ("entropy", cw.entropy),
            ("significant", cw.significant),
            ("entities", cw.entities),
            ("tags", cw.tags),
        ] {
            p.unit(&format!("complexity.weights.{name}"), v);
        }
        p.check(
            cw.entropy + cw.significant + cw.entities + cw.tags > 0.0,
            "complexity.weights",
            "must not all be 0",
            0,
        );
        p.check(
            c.significant_scale > 0.0,
            "complexity.significant_scale",
            "must be > 0",
            c.significant_scale,
        );
        p.check(
            c.entity_cap >= 2,
            "complexity.entity_cap",
            "must be >= 2",
            c.entity_cap,
        );
        p.check(
            c.tag_cap >= 1,
            "complexity.tag_cap",
            "must be >= 1",
            c.tag_cap,
        );
        let u = &self.urgency;
        p.unit("urgency.weights.severity", u.weights.severity);
        p.unit("urgency.weights.score", u.weights.score);
        p.check(
            u.weights.severity + u.weights.score > 0.0,
            "urgency.weights",
            "must not all be 0",
            0,
        );
        let d = &u.departure;
        for (name, v) in [
            ("entropy", d.entropy),
            ("persistence", d.persistence),
            ("betti", d.betti),
            ("diagram", d.diagram),
        ] {
            p.unit(&format!("urgency.departure.{name}"), v);
        }
        p.check(
            u.amplification >= 0.0,
            "urgency.amplification",
            "must be >= 0",
            u.amplification,
        );
        p.check(
            u.half_life_ms > 0,
            "urgency.half_life_ms",
            "must be > 0",
            u.half_life_ms,
        );
        p.unit("urgency.decay_floor", u.decay_floor);
        p.check(
            u.baseline_alpha > 0.0 && u.baseline_alpha <= 1.0,
            "urgency.baseline_alpha",
            "must be in (0,1]",
            u.baseline_alpha,
        );
        p.check(
            u.baseline_min_samples >= 1,
            "urgency.baseline_min_samples",
            "must be >= 1",
            u.baseline_min_samples,
        );
        p.check(
            u.baseline_max_sources >= 1,
            "urgency.baseline_max_sources",
            "must be >= 1",
            u.baseline_max_sources,
        );
        let r = &self.routing;
        for (name, v) in [
            ("consensus_urgency", r.consensus_urgency),
            ("consensus_confidence", r.consensus_confidence),
            ("hierarchical_complexity", r.hierarchical_complexity),
            ("strategic_urgency", r.strategic_urgency),
            ("tactical_urgency", r.tactical_urgency),
        ] {
            p.unit(&format!("routing.{name}"), v);
        }
        p.check(
            r.tactical_urgency <= r.strategic_urgency,
            "routing.tactical_urgency",
            "must be <= routing.strategic_urgency",
            r.tactical_urgency,
        );
        p.check(
            r.fan_out_entities >= 2,
            "routing.fan_out_entities",
            "must be >= 2",
            r.fan_out_entities,
        );
        p.check(
            r.cache_ttl_ms > 0,
            "routing.cache_ttl_ms",
            "must be > 0",
            r.cache_ttl_ms,
        );
        p.check(
            r.cache_capacity >= 1,
            "routing.cache_capacity",
            "must be >= 1",
            r.cache_capacity,
        );
        let l = &self.learning;
        p.check(
            l.max_prototypes >= 1,
            "learning.max_prototypes",
            "must be >= 1",
            l.max_prototypes,
        );
        p.unit("learning.refresh_fraction", l.refresh_fraction);
        p.check(
            l.max_source_share > 0.0 && l.max_source_share <= 1.0,
            "learning.max_source_share",
            "must be in (0,1]",
            l.max_source_share,
        );
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(p.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip_through_toml() {
        let c = SemanticConfig::default();
        assert_eq!(c.validate(), Ok(()));
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<SemanticConfig>(&text).unwrap(), c);
        assert_eq!(toml::from_str::<SemanticConfig>("").unwrap(), c);
    }

    #[test]
    fn validate_reports_every_problem_with_path_and_value() {
        let mut c = SemanticConfig::default();
        c.urgency.weights.severity = 1.7;
        c.routing.cache_ttl_ms = 0;
        c.learning.max_prototypes = 0;
        let errs = c.validate().unwrap_err();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs
            .contains(&"semantic.urgency.weights.severity: must be in [0,1], got 1.7".to_string()));
        assert!(errs
            .iter()
            .any(|e| e.starts_with("semantic.routing.cache_ttl_ms:") && e.ends_with("got 0")));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<SemanticConfig>("[urgency]\nhalf_life = 3\n").unwrap_err();
        assert!(err.to_string().contains("half_life"), "{err}");
    }
}
