//! `aura patterns`: build and inspect the semantic engine's pattern library.
//!
//! - `aura patterns fit --dataset FILE.jsonl --out FILE.toml`: prototypes, metric, radii and calibration
//!   from labelled examples, keeping the base library's tags, capabilities and workflows.
//! - `aura patterns generate --scenario NAME --count N --out FILE.jsonl`: a labelled synthetic dataset (the
//!   same events `aura produce --scenario NAME` publishes).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::semantic::archetypes::{scenario, SCENARIOS};
use crate::semantic::dataset;
use crate::semantic::fit::{fit, FitOptions};
use crate::semantic::{PatternLibrary, SemanticConfig};

#[derive(Debug, Args)]
pub struct PatternsArgs {
    #[command(subcommand)]
    pub command: PatternsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PatternsCommand {
    /// Learn prototypes from a labelled dataset.
    Fit(FitArgs),
    /// Write a labelled synthetic dataset.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct FitArgs {
    /// Labelled examples, one JSON object per line.
    #[arg(long)]
    pub dataset: PathBuf,
    /// Where to write the fitted library.
    #[arg(long)]
    pub out: PathBuf,
    /// Library whose metadata (tags, capabilities, workflows) to keep; the built-in one when omitted.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Bound on prototypes per pattern (k-medoids beyond it).
    #[arg(long, default_value_t = 32)]
    pub max_prototypes: usize,
    /// Seed for the k-medoids initialization.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep base patterns that have no example in the dataset (with their old prototypes).
    #[arg(long)]
    pub keep_unseen: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Scenario name (mixed, drift, or an archetype).
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    /// Number of examples.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Noise in [0, 1].
    #[arg(long, default_value_t = 0.5)]
    pub noise: f64,
    /// Output JSON lines file.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: PatternsArgs) -> anyhow::Result<()> {
    match args.command {
        PatternsCommand::Fit(a) => run_fit(a),
        PatternsCommand::Generate(a) => run_generate(a),
    }
}

fn run_fit(a: FitArgs) -> anyhow::Result<()> {
    let examples = dataset::read(&a.dataset)?;
    anyhow::ensure!(
        !examples.is_empty(),
        "dataset {} has no examples",
        a.dataset.display()
    );
    let base = match &a.base {
        Some(p) => PatternLibrary::load(p)?,
        None => PatternLibrary::builtin(),
    };
    let opts = FitOptions {
        max_prototypes: a.max_prototypes,
        seed: a.seed,
        keep_unseen: a.keep_unseen,
    };
    let (library, summary) = fit(&examples, &base, &opts, &SemanticConfig::default());
    std::fs::write(&a.out, library.to_toml())
        .with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "fitted {} examples into {} (library version {})",
        examples.len(),
        a.out.display(),
        library.version
    );
    println!(
        "{:24} {:>8} {:>10} {:>8}",
        "pattern", "examples", "prototypes", "radius"
    );
    for (name, n, k, r) in &summary.patterns {
        println!("{name:24} {n:>8} {k:>10} {r:>8.3}");
    }
    if !summary.new_patterns.is_empty() {
        println!(
            "new patterns (triaged by an Analyst until given a workflow): {}",
            summary.new_patterns.join(", ")
        );
    }
    println!(
        "leave-one-out training accuracy: {:.2}%",
        100.0 * summary.loo_accuracy
    );
    Ok(())
}

fn run_generate(a: GenerateArgs) -> anyhow::Result<()> {
    let stream = scenario(&a.scenario, a.seed, a.noise)
        .with_context(|| format!("known scenarios: {}", SCENARIOS.join(", ")))?;
    let file = std::fs::File::create(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for ex in stream.take(a.count) {
        dataset::write_line(&mut out, &ex)?;
    }
    out.flush()?;
    println!(
        "wrote {} examples of scenario {} to {}",
        a.count,
        a.scenario,
        a.out.display()
    );
    Ok(())
}
