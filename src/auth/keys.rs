//! The keyring: per-agent-type HMAC keys, each with an id so keys can rotate.
//!
//! A keyring file (TOML) lists keys; each secret is read from a file or an environment
//! variable, never written in the keyring itself:
//!
//! ```toml
//! [[keys]]
//! id = "observer-2026-11"
//! agent_type = "OBSERVER"
//! state = "active"          # signs and verifies
//! secret = { file = "/run/secrets/observer-2026-11" }
//!
//! [[keys]]
//! id = "observer-2026-10"
//! agent_type = "OBSERVER"
//! state = "verify_only"     # still accepted during a rotation; signs nothing
//! secret = { env = "OBSERVER_KEY_2026_10" }
//! ```
//!
//! Rotation: add the new key as `verify_only` everywhere, make it `active` (the old one
//! `verify_only`) on Aura and the agents, then mark the old one `retired`: answers signed with
//! a retired key are refused by name (`auth_retired_key`), not as unknown.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::model::AgentType;
use crate::security::{Env, Secret, SecretSource};

/// Shortest secret accepted: 32 bytes, the HMAC-SHA256 block's half, as RFC 2104 advises.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Signs, and verifies.
    Active,
    /// Verifies only: the other half of a rotation.
    VerifyOnly,
    /// Refused: anything signed with it is rejected as `auth_retired_key`.
    Retired,
}

/// One key as written in the keyring file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    /// Unique within the keyring; travels in every signed record as `key_id`.
    id: String,
    /// The agent type the key belongs to: only that type's answers verify with it.
    agent_type: AgentType,
    /// `active`, `verify_only` or `retired`.
    state: KeyState,
    /// Where the secret is: `{ file = "PATH" }` or `{ env = "VAR" }`.
    secret: SecretSource,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyringFile {
    /// Every key, of every agent type.
    keys: Vec<KeyEntry>,
}

/// A key, loaded.
#[derive(Debug, Clone)]
pub struct Key {
    pub id: String,
    pub agent_type: AgentType,
    pub state: KeyState,
    pub secret: Secret,
}

/// Keys by id; at most one `active` key per agent type.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, Key>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read keyring {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("keyring {file} is not valid: {message}")]
    Parse { file: String, message: String },
    #[error("keyring {file} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { file: String, problems: Vec<String> },
}

impl Keyring {
    /// Reads and checks a keyring file, reading every secret; every problem is reported at once.
    pub fn load(path: &Path, env: Env<'_>) -> Result<Self, KeyringError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyringError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file, env)
    }

    /// [`Keyring::load`] from text; `file` names it in messages.
    pub fn parse(text: &str, file: &str, env: Env<'_>) -> Result<Self, KeyringError> {
        let parsed: KeyringFile = toml::from_str(text).map_err(|e| KeyringError::Parse {
            file: file.to_owned(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut keyring = Keyring::default();
        for (i, entry) in parsed.keys.into_iter().enumerate() {
            let at = format!("keys[{i}]");
            let secret = match entry.secret.read(env) {
                Ok(s) if s.expose().len() >= MIN_SECRET_BYTES => Some(s),
                Ok(_) => {
                    problems.push(format!(
                        "{at}.secret: must be at least {MIN_SECRET_BYTES} bytes, got a shorter one from {}",
                        entry.secret
                    ));
                    None
                }
                Err(e) => {
                    problems.push(format!("{at}.secret: {e}, got {}", entry.secret));
                    None
                }
            };
            if entry.id.is_empty() {
                problems.push(format!("{at}.id: must not be empty, got \"\""));
            }
            if keyring.keys.contains_key(&entry.id) {
                problems.push(format!("{at}.id: must be unique, got {:?} twice", entry.id));
            }
            if let Some(secret) = secret {
                keyring.keys.insert(
                    entry.id.clone(),
                    Key {
                        id: entry.id,
                        agent_type: entry.agent_type,
                        state: entry.state,
                        secret,
                    },
                );
            }
        }
        for agent_type in [
            AgentType::Observer,
            AgentType::Analyst,
            AgentType::Supervisor,
        ] {
            let active: Vec<&str> = keyring
                .keys
                .values()
                .filter(|k| k.agent_type == agent_type && k.state == KeyState::Active)
                .map(|k| k.id.as_str())
                .collect();
            if active.len() > 1 {
                problems.push(format!(
                    "keys: at most one active key per agent type, got {active:?} for {agent_type:?}"
                ));
            }
        }
        if problems.is_empty() {
            Ok(keyring)
        } else {
            Err(KeyringError::Invalid {
                file: file.to_owned(),
                problems,
            })
        }
    }

    /// Builds a keyring from keys already loaded (tests, embedded demos).
    pub fn from_keys(keys: impl IntoIterator<Item = Key>) -> Self {
        Self {
            keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        }
    }

    /// The key that signs for `agent_type`, if it has an active one.
    pub fn active(&self, agent_type: AgentType) -> Option<&Key> {
        self.keys
            .values()
            .find(|k| k.agent_type == agent_type && k.state == KeyState::Active)
    }

    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(id)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "0123456789abcdef0123456789abcdef";

    fn env(name: &str) -> Option<String> {
        match name {
            "K1" | "K2" => Some(LONG.into()),
            "SHORT" => Some("tiny-secret-9".into()),
            _ => None,
        }
    }

    #[test]
    fn two_live_keys_of_one_type_sign_with_the_active_one() {
        let text = r#"
            [[keys]]
            id = "obs-new"
            agent_type = "OBSERVER"
            state = "active"
            secret = { env = "K2" }
            [[keys]]
            id = "obs-old"
            agent_type = "OBSERVER"
            state = "verify_only"
            secret = { env = "K1" }
        "#;
        let keyring = Keyring::parse(text, "keys.toml", &env).unwrap();
        assert_eq!(keyring.active(AgentType::Observer).unwrap().id, "obs-new");
        assert_eq!(keyring.get("obs-old").unwrap().state, KeyState::VerifyOnly);
        assert!(keyring.active(AgentType::Analyst).is_none());
    }

    #[test]
    fn every_problem_is_named_and_no_secret_is_shown() {
        let text = r#"
            [[keys]]
            id = "a"
            agent_type = "OBSERVER"
            state = "active"
            secret = { env = "SHORT" }
            [[keys]]
            id = "b"
            agent_type = "ANALYST"
            state = "active"
            secret = { env = "MISSING" }
            [[keys]]
            id = "c"
            agent_type = "ANALYST"
            state = "active"
            secret = { env = "K1" }
            [[keys]]
            id = "d"
            agent_type = "ANALYST"
            state = "active"
            secret = { env = "K2" }
        "#;
        let err = Keyring::parse(text, "keys.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("keys.toml"), "{err}");
        assert!(
            err.contains("keys[0].secret: must be at least 32 bytes"),
            "{err}"
        );
        assert!(
            err.contains("keys[1].secret: environment variable MISSING is not set"),
            "{err}"
        );
        assert!(err.contains("at most one active key"), "{err}");
        assert!(
            !err.contains("tiny-secret-9") && !err.contains(LONG),
            "{err}"
        );
    }
}
