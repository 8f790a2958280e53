//! `aura eval`: how well the semantic engine matches and routes a labelled dataset.
//!
//! Prints pattern accuracy, route accuracy (where labels carry routes), a confusion matrix and calibration
//! (accuracy by confidence bucket); `--report-json` writes the same as JSON (`n`, `pattern_accuracy`,
//! `route_accuracy` (null without route labels), `confusion`, `calibration`, ...).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::semantic::dataset;
use crate::semantic::eval::{evaluate, EvalOptions};
use crate::semantic::{Engine, PatternLibrary, SemanticConfig};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Labelled examples, one JSON object per line.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Pattern library to evaluate; the built-in one when omitted.
    #[arg(long)]
    pub patterns: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
    /// A TOML file holding a `SemanticConfig` (the `[semantic]` table's contents); defaults when omitted.
    #[arg(long)]
    pub semantic_config: Option<PathBuf>,
    /// Feed each example's label back after assessing it, as confirmed feedback (prequential evaluation).
    #[arg(long)]
    pub feedback: bool,
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let config: SemanticConfig = match &args.semantic_config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("cannot parse {}", p.display()))?
        }
        None => SemanticConfig::default(),
    };
    if let Err(problems) = config.validate() {
        anyhow::bail!("invalid semantic config: {}", problems.join("; "));
    }
    let library = match &args.patterns {
        Some(p) => PatternLibrary::load(p)?,
        None => PatternLibrary::builtin(),
    };
    let examples = dataset::read(&args.dataset)?;
    let engine = Engine::new(config, library);
    let (report, _) = evaluate(
        &engine,
        &examples,
        EvalOptions {
            feedback: args.feedback,
        },
    );
    // A closed pipe (`| head`) is an error to report, not a panic.
    write!(std::io::stdout().lock(), "{report}")?;
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::patterns::{FitArgs, GenerateArgs, PatternsArgs, PatternsCommand};

    #[test]
    fn generate_fit_and_eval_write_a_json_report() {
        let dir = tempfile::tempdir().unwrap();
        let (data, lib, json) = (
            dir.path().join("d.jsonl"),
            dir.path().join("p.toml"),
            dir.path().join("r.json"),
        );
        let generate = GenerateArgs {
            scenario: "mixed".into(),
            count: 200,
            seed: 3,
            noise: 0.3,
            out: data.clone(),
        };
        crate::cli::patterns::run(PatternsArgs {
            command: PatternsCommand::Generate(generate),
        })
        .unwrap();
        let fit = FitArgs {
            dataset: data.clone(),
            out: lib.clone(),
            base: None,
            max_prototypes: 4,
            seed: 1,
            keep_unseen: false,
        };
        crate::cli::patterns::run(PatternsArgs {
            command: PatternsCommand::Fit(fit),
        })
        .unwrap();
        run(EvalArgs {
            dataset: data,
            patterns: Some(lib),
            report_json: Some(json.clone()),
            semantic_config: None,
            feedback: false,
        })
        .unwrap();
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(report["n"], 200);
        assert!(report["pattern_accuracy"].as_f64().unwrap() > 0.9);
        assert!(report["route_accuracy"].is_number());
        assert!(report["confusion"]["ddos"].is_object());
    }
}
