//! `aura eval`: how well the semantic engine matches and routes a labelled dataset.
//!
//! Prints pattern accuracy, route accuracy (where labels carry routes), a confusion matrix and calibration
//! (accuracy by confidence bucket); `--report-json` writes the same as JSON (`n`, `pattern_accuracy`,
//! `route_accuracy` (null without route labels), `confusion`, `calibration`, ...).

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
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
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
    let (report, _) = evaluate(&engine, &examples, EvalOptions { feedback: args.feedback });
    print!("{report}");
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
