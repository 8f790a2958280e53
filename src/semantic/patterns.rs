//! The pattern library (`topologies/patterns.toml`): named incident patterns with prototype diagrams, tag
//! hints, required capabilities and a default workflow, plus the metric and calibration that `aura patterns
//! fit` learns. This file is the source of truth; [`super::matcher::Compiled`] is its fast form.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::embedding::EMBED_DIM;
use crate::model::{AgentType, Coordination, Layer, PersistencePoint};

/// A prototype diagram, point by point as `[dimension, birth, death]` (`death = inf` for essential points).
pub type ProtoDiagram = Vec<(i32, f64, f64)>;

/// Most prototypes a pattern's distance averages over.
pub const MAX_NEIGHBORS: usize = 4;

/// The pattern name reserved for "no pattern is close".
pub const UNKNOWN: &str = "unknown";

/// The whole library file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternLibrary {
    /// Bumped whenever prototypes change (fit, online learning); part of every route cache key.
    #[serde(default)]
    pub version: u64,
    /// The learned metric; without it, embeddings are compared unweighted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// The learned confidence calibration; without it, raw confidences are reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// The patterns.
    pub patterns: Vec<PatternSpec>,
}

/// A diagonal metric on embeddings: `u = (x − center) · scale`, compared in Euclidean distance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// Per-coordinate center.
    pub center: Vec<f64>,
    /// Per-coordinate weight (>= 0): relevance divided by within-pattern spread.
    pub scale: Vec<f64>,
    /// Distance that costs one unit of log-odds in the match confidence, > 0.
    pub temperature: f64,
    /// A pattern's distance is the mean distance to its this many nearest prototypes, in 1..=4.
    #[serde(default = "one")]
    pub neighbors: usize,
}

fn one() -> usize {
    1
}

/// Piecewise-linear map from raw to calibrated confidence, fitted by isotonic regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Raw confidences, increasing, in [0, 1].
    pub raw: Vec<f64>,
    /// Observed accuracy at each raw value, non-decreasing, in [0, 1].
    pub calibrated: Vec<f64>,
}

/// One step of a pattern's default workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Step name, unique within the workflow.
    pub name: String,
    /// The agent type that performs it.
    pub agent_type: AgentType,
    /// Capabilities the performing agent must have (a subset of the pattern's).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// One incident pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    /// Unique name; `unknown` is reserved.
    pub name: String,
    /// What the pattern means, for operators.
    #[serde(default)]
    pub description: String,
    /// Tags that hint at this pattern.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Capabilities the pattern needs from agents.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Default workflow name.
    pub workflow: String,
    /// Default coordination, used when no routing rule applies.
    pub coordination: Coordination,
    /// Lowest layer the pattern is handled at.
    pub layer: Layer,
    /// The workflow's steps, in order.
    pub steps: Vec<StepSpec>,
    /// Match radius in metric units; farther than this from every prototype is `unknown`. Learned by fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radius: Option<f64>,
    /// Prototype diagrams.
    pub prototypes: Vec<ProtoDiagram>,
}

/// Why a library could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot read pattern library {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse pattern library {path}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid pattern library {path}: {}", problems.join("; "))]
    Invalid { path: String, problems: Vec<String> },
}

pub fn to_points(d: &ProtoDiagram) -> Vec<PersistencePoint> {
    d.iter()
        .map(|&(dimension, birth, death)| PersistencePoint {
            dimension,
            birth,
            death,
        })
        .collect()
}

pub fn from_points(d: &[PersistencePoint]) -> ProtoDiagram {
    d.iter().map(|p| (p.dimension, p.birth, p.death)).collect()
}

impl PatternLibrary {
    /// Parses and validates; `path` only labels messages.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, LibraryError> {
        let lib: PatternLibrary = toml::from_str(text).map_err(|source| LibraryError::Parse {
            path: path.into(),
            source,
        })?;
        lib.validate().map_err(|problems| LibraryError::Invalid {
            path: path.into(),
            problems,
        })?;
        Ok(lib)
    }

    pub fn load(path: &Path) -> Result<Self, LibraryError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| LibraryError::Read {
            path: p.clone(),
            source,
        })?;
        Self::from_toml(&text, &p)
    }

    /// The library shipped in `topologies/patterns.toml`, compiled in so the engine always has one.
    pub fn builtin() -> Self {
        Self::from_toml(
            include_str!("../../topologies/patterns.toml"),
            "topologies/patterns.toml",
        )
        .expect("the shipped pattern library is valid (tested)")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a pattern library always serializes")
    }

    pub fn pattern(&self, name: &str) -> Option<&PatternSpec> {
        self.patterns.iter().find(|p| p.name == name)
    }

    /// Every problem, each naming the path and the value.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut out = Vec::new();
        if let Some(m) = &self.metric {
            for (name, v) in [("center", &m.center), ("scale", &m.scale)] {
                if v.len() != EMBED_DIM {
                    out.push(format!(
                        "metric.{name}: must have {EMBED_DIM} values, got {}",
                        v.len()
                    ));
                }
            }
            if let Some((i, s)) = m
                .scale
                .iter()
                .enumerate()
                .find(|(_, s)| !(s.is_finite() && **s >= 0.0))
            {
                out.push(format!(
                    "metric.scale[{i}]: must be finite and >= 0, got {s}"
                ));
            }
            if !(1..=MAX_NEIGHBORS).contains(&m.neighbors) {
                out.push(format!(
                    "metric.neighbors: must be in 1..={MAX_NEIGHBORS}, got {}",
                    m.neighbors
                ));
            }
            if !(m.temperature > 0.0 && m.temperature.is_finite()) {
                out.push(format!(
                    "metric.temperature: must be > 0, got {}",
                    m.temperature
                ));
            }
        }
        if let Some(c) = &self.calibration {
            if c.raw.len() != c.calibrated.len() || c.raw.is_empty() {
                out.push(format!("calibration: raw and calibrated must be non-empty and of equal length, got {} and {}", c.raw.len(), c.calibrated.len()));
            }
            let increasing = |v: &[f64]| {
                v.windows(2).all(|w| w[0] <= w[1]) && v.iter().all(|x| (0.0..=1.0).contains(x))
            };
            if !increasing(&c.raw) || !increasing(&c.calibrated) {
                out.push("calibration: values must be in [0,1] and non-decreasing".to_string());
            }
        }
        if self.patterns.is_empty() {
            out.push("patterns: must not be empty, got 0 patterns".to_string());
        }
        for (i, p) in self.patterns.iter().enumerate() {
            let at = format!("patterns[{i}]");
            if p.name.is_empty() || p.name == UNKNOWN {
                out.push(format!(
                    "{at}.name: must be non-empty and not `{UNKNOWN}`, got {:?}",
                    p.name
                ));
            }
            if self.patterns[..i].iter().any(|q| q.name == p.name) {
                out.push(format!(
                    "{at}.name: must be unique, got duplicate {:?}",
                    p.name
                ));
            }
            if p.steps.is_empty() {
                out.push(format!("{at}.steps: must not be empty ({})", p.name));
            }
            for (j, s) in p.steps.iter().enumerate() {
                for c in s
                    .capabilities
                    .iter()
                    .filter(|c| !p.capabilities.contains(c))
                {
                    out.push(format!("{at}.steps[{j}].capabilities: {c:?} is not among the pattern's capabilities"));
                }
            }
            if p.prototypes.is_empty() {
                out.push(format!("{at}.prototypes: must not be empty ({})", p.name));
            }
            if let Some(r) = p.radius.filter(|r| !(*r > 0.0 && r.is_finite())) {
                out.push(format!("{at}.radius: must be > 0, got {r}"));
            }
            for (j, proto) in p.prototypes.iter().enumerate() {
                if let Some((dim, b, d)) = proto
                    .iter()
                    .find(|(k, b, d)| *k < 0 || !b.is_finite() || *d < *b)
                {
                    out.push(format!(
                        "{at}.prototypes[{j}]: malformed point [{dim}, {b}, {d}]"
                    ));
                }
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_library_parses_with_at_least_six_patterns() {
        let lib = PatternLibrary::builtin();
        assert!(lib.patterns.len() >= 6);
        for name in [
            "memory-leak",
            "network-partition",
            "cascading-failure",
            "ddos",
            "data-drift",
            "sensor-fault",
        ] {
            assert!(lib.pattern(name).is_some(), "{name} missing");
        }
        let again = PatternLibrary::from_toml(&lib.to_toml(), "round-trip").unwrap();
        assert_eq!(again, lib);
    }

    #[test]
    fn validation_names_path_and_value() {
        let mut lib = PatternLibrary::builtin();
        lib.patterns[1].name = lib.patterns[0].name.clone();
        lib.patterns[2].radius = Some(-1.0);
        let errs = lib.validate().unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.starts_with("patterns[1].name: must be unique")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e == "patterns[2].radius: must be > 0, got -1"),
            "{errs:?}"
        );
    }
}
