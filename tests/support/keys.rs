//! A keyring for tests: one active HMAC key per agent type, each secret in its own file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use aura::auth::{Key, KeyState, Keyring};
use aura::model::AgentType;
use aura::security::Secret;

pub const TYPES: [(AgentType, &str); 3] = [
    (AgentType::Observer, "observer"),
    (AgentType::Analyst, "analyst"),
    (AgentType::Supervisor, "supervisor"),
];

/// A keyring file with one active key per agent type, each secret in its own file.
pub fn write_keyring(dir: &Path) -> (PathBuf, Keyring) {
    let mut text = String::new();
    let mut keys = Vec::new();
    for (agent_type, name) in TYPES {
        let secret = format!("{name}-{}", uuid::Uuid::new_v4().simple());
        let file = dir.join(format!("{name}.key"));
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        text += &format!(
            "[[keys]]\nid = \"{name}-1\"\nagent_type = \"{}\"\nstate = \"active\"\nsecret = {{ file = \"{}\" }}\n\n",
            name.to_uppercase(),
            file.display()
        );
        keys.push(Key {
            id: format!("{name}-1"),
            agent_type,
            state: KeyState::Active,
            secret: Secret::new(secret),
        });
    }
    let path = dir.join("keyring.toml");
    std::fs::write(&path, text).unwrap();
    (path, Keyring::from_keys(keys))
}
