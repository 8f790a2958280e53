//! `aura topology`: check configuration and topology files before deploying them.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Config;

#[derive(Subcommand)]
pub enum TopologyCommand {
    /// Validate a configuration file; prints every problem with its field and value, and
    /// exits non-zero if there is any.
    ///
    ///   aura topology check aura.toml
    Check {
        /// The file to check.
        path: PathBuf,
    },
}

pub fn run(command: TopologyCommand) -> anyhow::Result<()> {
    match command {
        TopologyCommand::Check { path } => {
            Config::load(&path)?;
            println!("{}: ok", path.display());
            Ok(())
        }
    }
}
