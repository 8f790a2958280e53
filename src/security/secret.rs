//! Secrets: values that must never reach a log line, an error message or a `Debug` dump.
//!
//! A secret is named in the configuration by where it lives (`{ file = "..." }` or
//! `{ env = "..." }`), never by its value, so the TOML can be checked in and shown. The
//! value is read once at start-up into a [`Secret`], whose `Debug` and `Display` print
//! `[redacted]`; only [`Secret::expose`] hands the text to the client that needs it.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// A secret value. Formatting it prints `[redacted]`, whatever the format.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one call that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret is read from: `{ file = "/run/secrets/kafka" }` or `{ env = "KAFKA_PASSWORD" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// A file holding the secret; one trailing newline is dropped (as `echo` writes it).
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{{ file = {:?} }}", path.display().to_string()),
            Self::Env(name) => write!(f, "{{ env = {name:?} }}"),
        }
    }
}

/// Why a secret could not be read. The messages name the source, never the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
    #[error("environment variable {name} is not set")]
    MissingEnv { name: String },
    #[error("the secret from {source_name} is empty")]
    Empty { source_name: String },
}

/// Reads environment variables; a closure so tests never touch the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl SecretSource {
    /// Reads the secret now.
    pub fn read(&self, env: Env<'_>) -> Result<Secret, SecretError> {
        let value = match self {
            Self::File(path) => read_file(path)?,
            Self::Env(name) => {
                env(name).ok_or_else(|| SecretError::MissingEnv { name: name.clone() })?
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                source_name: self.to_string(),
            });
        }
        Ok(Secret(value))
    }
}

fn read_file(path: &std::path::Path) -> Result<String, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_owned())
}

/// A secret given by environment: `<NAME>` holds the value, or `<NAME>_FILE` names a file
/// holding it (the convention of Docker and Kubernetes secrets). `None` when neither is set.
pub fn from_env(name: &str, env: Env<'_>) -> Result<Option<Secret>, SecretError> {
    if let Some(path) = env(&format!("{name}_FILE")) {
        return SecretSource::File(path.into()).read(env).map(Some);
    }
    match env(name) {
        Some(_) => SecretSource::Env(name.to_owned()).read(env).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An environment of `pairs` only, for tests of settings read from the environment.
    pub(crate) fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(
            format!("{secret} {secret:?} {secret:#?}"),
            "[redacted] [redacted] [redacted]"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn reads_a_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        let secret = SecretSource::File(path).read(&env_of(&[])).unwrap();
        assert_eq!(secret.expose(), "s3cret");
    }

    #[test]
    fn errors_name_the_source_not_the_value() {
        let env = env_of(&[("EMPTY", "")]);
        let missing = SecretSource::Env("NOPE".into()).read(&env).unwrap_err();
        assert_eq!(missing.to_string(), "environment variable NOPE is not set");
        let empty = SecretSource::Env("EMPTY".into()).read(&env).unwrap_err();
        assert!(empty.to_string().contains("EMPTY"), "{empty}");
        let file = SecretSource::File("/nonexistent/pw".into())
            .read(&env)
            .unwrap_err();
        assert!(file.to_string().contains("/nonexistent/pw"), "{file}");
    }

    #[test]
    fn env_secrets_come_from_the_variable_or_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file").unwrap();
        let path = path.display().to_string();
        let env = env_of(&[("A", "from-env"), ("B_FILE", &path)]);
        assert_eq!(from_env("A", &env).unwrap().unwrap().expose(), "from-env");
        assert_eq!(from_env("B", &env).unwrap().unwrap().expose(), "from-file");
        assert_eq!(from_env("C", &env).unwrap(), None);
    }
}
