//! Labelled datasets as JSON lines: `{"anomaly": {TdaAnomaly}, "label": {"pattern": ..., "route": {...}}}`.
//!
//! JSON has no infinity, so an essential point's `death` is written as `null`. Reading is lenient about the
//! ways other tools spell it: `null`, a missing `death`, or the strings `"inf"`, `"Infinity"` all mean an
//! essential point (see [`super::diagram`] for what that implies). Optional anomaly fields (ids, betti,
//! signature, tags, entities, attributes; severity defaults to MEDIUM) may be omitted.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::{AgentType, Coordination, Layer, PersistencePoint, Severity, TdaAnomaly};

/// The route an example should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteLabel {
    pub agent_type: AgentType,
    pub coordination: Coordination,
    pub layer: Layer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteLabel>,
}

/// One line of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelledAnomaly {
    pub anomaly: TdaAnomaly,
    pub label: Label,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot open dataset {path}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: cannot read line")]
    Io {
        path: String,
        line: usize,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a labelled anomaly")]
    Parse {
        path: String,
        line: usize,
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Death {
    Number(f64),
    Text(String),
}

#[derive(Deserialize)]
struct PointRecord {
    dimension: i32,
    birth: f64,
    #[serde(default)]
    death: Option<Death>,
}

#[derive(Deserialize)]
struct AnomalyRecord {
    #[serde(default)]
    anomaly_id: String,
    #[serde(default)]
    correlation_id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    detected_at: i64,
    #[serde(default)]
    anomaly_score: f64,
    /// Datasets made from diagrams alone often have no severity; MEDIUM is the neutral middle.
    #[serde(default = "medium")]
    severity: Severity,
    #[serde(default)]
    betti: Vec<i32>,
    diagram: Vec<PointRecord>,
    #[serde(default)]
    signature: Vec<f32>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    entities: Vec<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Record {
    anomaly: AnomalyRecord,
    label: Label,
}

fn medium() -> Severity {
    Severity::Medium
}

fn death(d: Option<Death>) -> f64 {
    match d {
        None => f64::INFINITY,
        Some(Death::Number(x)) => x,
        Some(Death::Text(t)) => match t.to_ascii_lowercase().trim_start_matches('+') {
            "inf" | "infinity" => f64::INFINITY,
            "-inf" | "-infinity" => f64::NEG_INFINITY,
            // Anything else is malformed; NaN is dropped-or-essential per the diagram rules, so make it -inf
            // (dropped) rather than guessing.
            _ => f64::NEG_INFINITY,
        },
    }
}

impl From<Record> for LabelledAnomaly {
    fn from(r: Record) -> Self {
        let a = r.anomaly;
        LabelledAnomaly {
            anomaly: TdaAnomaly {
                anomaly_id: a.anomaly_id,
                correlation_id: a.correlation_id,
                source: a.source,
                detected_at: a.detected_at,
                anomaly_score: a.anomaly_score,
                severity: a.severity,
                betti: a.betti,
                diagram: a
                    .diagram
                    .into_iter()
                    .map(|p| PersistencePoint {
                        dimension: p.dimension,
                        birth: p.birth,
                        death: death(p.death),
                    })
                    .collect(),
                signature: a.signature,
                tags: a.tags,
                entities: a.entities,
                attributes: a.attributes,
            },
            label: r.label,
        }
    }
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<LabelledAnomaly, serde_json::Error> {
    serde_json::from_str::<Record>(line).map(LabelledAnomaly::from)
}

/// Reads a whole dataset; blank lines are skipped.
pub fn read(path: &Path) -> Result<Vec<LabelledAnomaly>, DatasetError> {
    let p = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Open {
        path: p.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|source| DatasetError::Io {
            path: p.clone(),
            line: i + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(&line).map_err(|source| DatasetError::Parse {
            path: p.clone(),
            line: i + 1,
            source,
        })?);
    }
    Ok(out)
}

/// Writes one example as a line (essential deaths become `null`).
pub fn write_line(out: &mut impl Write, example: &LabelledAnomaly) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, example)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_deaths_round_trip_and_lenient_spellings_parse() {
        let line = r#"{"anomaly":{"severity":"HIGH","diagram":[{"dimension":0,"birth":0,"death":null},{"dimension":0,"birth":0},{"dimension":1,"birth":0.1,"death":"Infinity"},{"dimension":1,"birth":0.1,"death":0.5}]},"label":{"pattern":"x","route":{"agent_type":"ANALYST","coordination":"PIPELINE","layer":"TACTICAL"}}}"#;
        let ex = parse_line(line).unwrap();
        let deaths: Vec<f64> = ex.anomaly.diagram.iter().map(|p| p.death).collect();
        assert_eq!(
            deaths,
            vec![f64::INFINITY, f64::INFINITY, f64::INFINITY, 0.5]
        );
        assert_eq!(ex.label.route.unwrap().agent_type, AgentType::Analyst);
        let mut buf = Vec::new();
        write_line(&mut buf, &ex).unwrap();
        let again = parse_line(std::str::from_utf8(&buf).unwrap().trim()).unwrap();
        assert_eq!(again, ex);
    }

    #[test]
    fn malformed_line_is_an_error_not_a_panic() {
        assert!(parse_line("{\"anomaly\": 3}").is_err());
        assert!(parse_line("not json").is_err());
    }
}
