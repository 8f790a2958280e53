//! Configuration errors: all fatal, each naming the file, the field and the value.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with one field.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `kafka.commit.interval.ms`.
    pub field: String,
    /// What the field held, as written.
    pub value: String,
    /// What it must be instead.
    pub rule: String,
}

impl Problem {
    pub fn new(field: &str, value: impl fmt::Display, rule: &str) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            rule: rule.into(),
        }
    }
}

impl Problem {
    /// Reads a problem already written as `field: rule, got value`.
    pub fn from_message(message: &str) -> Self {
        let (field, rest) = message.split_once(": ").unwrap_or(("", message));
        let (rule, value) = rest.rsplit_once(", got ").unwrap_or((rest, ""));
        Self {
            field: field.into(),
            value: value.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}, got \"\"", self.field, self.rule)
        } else {
            write!(f, "{}: {}, got {}", self.field, self.rule, self.value)
        }
    }
}

/// Why the configuration cannot be used. The service exits non-zero on any of these.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid TOML for aura: {message}", file.display())]
    Parse { file: PathBuf, message: String },
    #[error("config file {} has {} problem(s):\n{}", file.display(), problems.len(), list(problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}
