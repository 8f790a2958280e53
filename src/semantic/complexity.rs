//! Semantic complexity in [0, 1]: how much is going on in an anomaly, from its diagram (entropy, number
//! of significant features) and its context (affected entities, distinct tags). The parts are kept for the
//! explanation; the weights are configuration.

use super::config::ComplexityConfig;
use super::features::Features;
use crate::model::TdaAnomaly;

/// Complexity and its parts (each in [0, 1]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Complexity {
    pub value: f64,
    pub entropy: f64,
    pub significant: f64,
    pub entities: f64,
    pub tags: f64,
}

pub fn complexity(f: &Features, a: &TdaAnomaly, cfg: &ComplexityConfig) -> Complexity {
    let w = &cfg.weights;
    let distinct_tags = a
        .tags
        .iter()
        .enumerate()
        .filter(|(i, t)| !a.tags[..*i].contains(t))
        .count();
    let mut c = Complexity {
        entropy: f.entropy,
        significant: 1.0 - (-(f.significant as f64) / cfg.significant_scale).exp(),
        // One entity is the simple case: the part grows from the second entity on.
        entities: (a.entities.len().saturating_sub(1) as f64 / (cfg.entity_cap - 1) as f64)
            .min(1.0),
        tags: (distinct_tags as f64 / cfg.tag_cap as f64).min(1.0),
        value: 0.0,
    };
    let total = w.entropy + w.significant + w.entities + w.tags;
    c.value = ((w.entropy * c.entropy
        + w.significant * c.significant
        + w.entities * c.entities
        + w.tags * c.tags)
        / total)
        .clamp(0.0, 1.0);
    c
}

#[cfg(test)]
mod tests {
    use super::super::config::SemanticConfig;
    use super::super::diagram::clean;
    use super::*;
    use crate::model::Severity;

    use super::super::fixtures::{anomaly, loop_diagram};

    #[test]
    fn complexity_parts_are_weighted_and_bounded() {
        let cfg = SemanticConfig::default();
        let a = anomaly(loop_diagram(1.0), Severity::Low);
        let f = Features::compute(&clean(&a.diagram), &a.betti, &cfg.features);
        let c = complexity(&f, &a, &cfg.complexity);
        assert!((c.entities - 1.0 / 7.0).abs() < 1e-12);
        assert!(
            (c.tags - 2.0 / 8.0).abs() < 1e-12,
            "duplicate tags count once"
        );
        assert!((0.0..=1.0).contains(&c.value));
    }
}
