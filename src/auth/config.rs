//! `[agent_auth]`: where Aura's keyring is.

use std::path::PathBuf;

use serde::Deserialize;

use super::keys::Keyring;
use super::AnswerGate;
use crate::config::Problem;
use crate::model::AgentType;
use crate::security::Env;

/// The environment variable that names the keyring file, overriding `agent_auth.keyring`.
pub const ENV_KEYRING: &str = "AURA_AGENT_KEYRING";

/// Signed commands and authenticated answers. Without a keyring, commands go unsigned and
/// answers are not checked (the default, for a cluster where only trusted agents can write).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentAuthConfig {
    /// The keyring file (format in `src/auth/keys.rs` and deploy/SECURITY.md). With it, every
    /// command is signed and every result must be signed by a live key of the agent type asked.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// The keyring, read during validation.
    #[serde(skip)]
    pub loaded: Option<Keyring>,
}

impl AgentAuthConfig {
    /// Reads the keyring (`AURA_AGENT_KEYRING` wins over the file's setting); Aura signs
    /// commands for every agent type, so each needs an active key.
    pub fn resolve(&mut self, env: Env<'_>, problems: &mut Vec<Problem>) {
        if let Some(path) = env(ENV_KEYRING) {
            self.keyring = Some(path.into());
        }
        let Some(path) = &self.keyring else {
            return;
        };
        match Keyring::load(path, env) {
            Ok(keyring) => {
                for agent_type in [
                    AgentType::Observer,
                    AgentType::Analyst,
                    AgentType::Supervisor,
                ] {
                    if keyring.active(agent_type).is_none() {
                        problems.push(Problem::new(
                            "agent_auth.keyring",
                            path.display(),
                            &format!(
                                "needs an active key for {agent_type:?}, to sign its commands"
                            ),
                        ));
                    }
                }
                self.loaded = Some(keyring);
            }
            Err(e) => problems.push(Problem::new(
                "agent_auth.keyring",
                path.display(),
                &e.to_string(),
            )),
        }
    }

    /// The saga processor's gate, when a keyring is configured.
    pub fn gate(&self) -> Option<AnswerGate> {
        self.loaded.clone().map(AnswerGate::new)
    }
}
