//! `aura topology`: check configuration, workflow and pattern files before deploying them,
//! draw workflows, and print the Kafka ACLs the topology needs.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use crate::config::Config;
use crate::saga::Workflows;
use crate::semantic::PatternLibrary;

#[derive(Subcommand)]
pub enum TopologyCommand {
    /// Validate a service config, a workflow file, a folder of workflow files or a pattern
    /// library; prints every problem with its file, field and value, and exits non-zero if
    /// there is any. The kind of file is recognised from its content.
    ///
    ///   aura topology check aura.toml
    ///   aura topology check topologies/workflows
    ///   aura topology check topologies/patterns.toml
    Check {
        /// The file or folder to check.
        path: PathBuf,
    },
    /// Draw workflows as Mermaid (paste into a Markdown file) or Graphviz DOT, or with
    /// --service the service's own topology (every input and output topic, the incident task
    /// and its stores) as DOT, for the defaults or a config file.
    ///
    ///   aura topology graph topologies/workflows --workflow triage --format dot | dot -Tpng > triage.png
    ///   aura topology graph --service --config aura.toml | dot -Tsvg > aura.svg
    Graph {
        /// A workflow file or a folder of them (not with --service).
        #[arg(required_unless_present = "service")]
        path: Option<PathBuf>,
        /// Draw the service's topology instead of workflows.
        #[arg(long, conflicts_with_all = ["workflow", "format"])]
        service: bool,
        /// With --service: the config file whose topic names to draw (defaults otherwise).
        #[arg(long, requires = "service")]
        config: Option<PathBuf>,
        /// Only this workflow; all of them when omitted.
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Print the Kafka ACLs the service's topology needs, for the defaults or a config file,
    /// one allow rule a line: PRINCIPAL OPERATIONS RESOURCE-TYPE PATTERN-TYPE NAME.
    /// aura gets Read on each topic it reads, Write on each it writes, Create on every topic
    /// it makes sure exists, and its internal topics, groups and transactional ids by the
    /// group.id prefix; agents read commands and write results; tda writes anomalies.
    /// deploy/kafka-acls.sh applies them with Kafka's own kafka-acls.sh:
    ///
    ///   aura topology acls --config aura.toml
    ///   deploy/kafka-acls.sh --config aura.toml --bootstrap-server HOST:PORT --dry-run
    #[command(verbatim_doc_comment)]
    Acls {
        /// The config file whose topic names and group.id to use (defaults otherwise).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        principals: AclPrincipals,
    },
}

/// Whom `aura topology acls` writes its rules for.
#[derive(clap::Args)]
pub struct AclPrincipals {
    /// The service's principal.
    #[arg(long, default_value = "User:aura")]
    aura_principal: String,
    /// The agents' principal.
    #[arg(long, default_value = "User:agent")]
    agent_principal: String,
    /// The TDA producer's principal.
    #[arg(long, default_value = "User:tda")]
    tda_principal: String,
    /// The agents' consumer group (`aura agents --group-id`), granted by prefix.
    #[arg(long, default_value = "aura-agents")]
    agents_group: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

pub fn run(command: TopologyCommand) -> anyhow::Result<()> {
    match command {
        TopologyCommand::Check { path } => {
            let what = check(&path)?;
            println!("{}: ok ({what})", path.display());
            Ok(())
        }
        TopologyCommand::Acls { config, principals } => {
            let (config, source) = match &config {
                Some(path) => (Config::load(path)?, path.display().to_string()),
                None => (Config::default(), "the defaults".to_owned()),
            };
            let principals = crate::security::acls::Principals {
                aura: principals.aura_principal,
                agent: principals.agent_principal,
                tda: principals.tda_principal,
                agents_group: principals.agents_group,
            };
            let rules = crate::security::acls::rules(&config, &principals);
            print!("{}", crate::security::acls::render(&rules, &source));
            Ok(())
        }
        TopologyCommand::Graph {
            service: true,
            config,
            ..
        } => {
            let config = match &config {
                Some(path) => Config::load(path)?,
                None => Config::default(),
            };
            print!("{}", crate::topology::Topology::new(&config).dot());
            Ok(())
        }
        TopologyCommand::Graph {
            path,
            workflow,
            format,
            ..
        } => {
            let path = path.expect("clap requires a path without --service");
            let workflows = load_workflows(&path)?;
            let selected: Vec<_> = match &workflow {
                Some(name) => vec![workflows.get(name).with_context(|| {
                    format!(
                        "no workflow {name:?} in {}; known: {}",
                        path.display(),
                        workflows.names().collect::<Vec<_>>().join(", ")
                    )
                })?],
                None => workflows.iter().collect(),
            };
            for w in selected {
                match format {
                    GraphFormat::Mermaid => println!("{}", w.to_mermaid()),
                    GraphFormat::Dot => println!("{}", w.to_dot()),
                }
            }
            Ok(())
        }
    }
}

/// Validates `path` as whatever it holds and says what that was.
fn check(path: &Path) -> anyhow::Result<String> {
    if path.is_dir() {
        let workflows = load_workflows(path)?;
        return Ok(format!("{} workflows", workflows.len()));
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text
        .lines()
        .any(|l| l.trim_start().starts_with("[workflows."))
    {
        let workflows = load_workflows(path)?;
        Ok(format!("{} workflows", workflows.len()))
    } else if text.lines().any(|l| l.trim() == "[[patterns]]") {
        let library = PatternLibrary::load(path)?;
        library.validate().map_err(|problems| {
            anyhow::anyhow!(
                "{} has {} problem(s):\n  - {}",
                path.display(),
                problems.len(),
                problems.join("\n  - ")
            )
        })?;
        Ok("pattern library".into())
    } else {
        Config::load(path)?;
        Ok("service config".into())
    }
}

fn load_workflows(path: &Path) -> anyhow::Result<Workflows> {
    if path.is_dir() {
        return Ok(Workflows::load_dir(path)?);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Workflows::from_sources([(
        path.display().to_string(),
        text,
    )])?)
}
