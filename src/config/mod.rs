//! The service configuration: one TOML file, validated at start-up.
//!
//! Kafka settings keep the names the Kafka ecosystem uses (`bootstrap.servers`, `group.id`,
//! `processing.guarantee`, `commit.interval.ms`), so a Kafka Streams user finds them where
//! they expect. Every problem is reported at once, each naming the file, the field and the value.

mod correlation;
mod error;
mod kafka;
mod sagas;
mod topics;
mod validation;

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::semantic::SemanticConfig;

pub use correlation::CorrelationConfig;
pub use error::{ConfigError, Problem};
pub use kafka::{KafkaConfig, ProcessingGuarantee};
pub use sagas::SagasConfig;
pub use topics::{InternalTopics, TopicsConfig};
pub use validation::ValidationConfig;

/// The whole service configuration (`aura run --config FILE`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka client and processing settings.
    pub kafka: KafkaConfig,
    /// The Confluent-compatible schema registry.
    pub schema_registry: SchemaRegistryConfig,
    /// Topic names; every one is configurable.
    pub topics: TopicsConfig,
    /// Limits that decide which anomalies are valid.
    pub validation: ValidationConfig,
    /// The HTTP endpoint for `/metrics`, `/healthz`, `/readyz`.
    pub http: HttpConfig,
    /// Weights and thresholds of the semantic engine (matching, urgency, complexity, routing).
    pub semantic: SemanticConfig,
    /// The pattern library file; without it, the built-in `topologies/patterns.toml`.
    pub patterns: Option<PathBuf>,
    /// Durable sagas (on by default).
    pub sagas: SagasConfig,
    /// Which anomalies make one incident.
    pub correlation: CorrelationConfig,
}

/// Where the schema registry is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g. `http://localhost:8081` or Apicurio's
    /// `http://localhost:8080/apis/ccompat/v7`. Empty means the embedded schema catalog.
    #[serde(default)]
    pub url: Option<String>,
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, `host:port`. Port 0 picks a free port (logged at start-up).
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
        }
    }
}

impl Config {
    /// Reads and validates `path`. Errors name the file, the field and the value.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text; `origin` names the file in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validated(origin)
    }

    /// Checks every field and returns every problem at once.
    pub fn validated(self, origin: &Path) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        self.kafka.validate(&mut problems);
        self.topics.validate(&mut problems);
        self.validation.validate(&mut problems);
        self.correlation.validate(&mut problems);
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(Problem::new(
                "http.listen",
                &self.http.listen,
                "must be host:port",
            ));
        }
        if let Some(url) = &self.schema_registry.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(Problem::new(
                    "schema_registry.url",
                    url,
                    "must start with http:// or https://",
                ));
            }
        }
        for p in self.sagas.engine.validate(&origin.display().to_string()) {
            let field = p.path.strip_prefix("saga.").unwrap_or(&p.path);
            problems.push(Problem::new(
                &format!("sagas.engine.{field}"),
                &p.value,
                &p.rule,
            ));
        }
        if let Err(messages) = self.semantic.validate() {
            problems.extend(messages.iter().map(|m| Problem::from_message(m)));
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid {
                file: origin.to_path_buf(),
                problems,
            })
        }
    }
}

/// The name used in messages for a configuration that came from flags and defaults only.
pub fn builtin_origin() -> PathBuf {
    PathBuf::from("<built-in defaults>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_defaults() {
        let config = Config::parse("", Path::new("aura.toml")).unwrap();
        assert_eq!(
            config.kafka.processing_guarantee,
            ProcessingGuarantee::ExactlyOnceV2
        );
        assert_eq!(config.topics.anomalies, "tda.anomalies");
    }

    #[test]
    fn every_problem_is_reported_with_file_field_and_value() {
        let text = r#"
            [kafka]
            "commit.interval.ms" = 0
            "bootstrap.servers" = ""
            [validation]
            max_diagram_points = 0
        "#;
        let err = Config::parse(text, Path::new("bad.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(
            err.contains("kafka.commit.interval.ms: must be > 0, got 0"),
            "{err}"
        );
        assert!(err.contains("kafka.bootstrap.servers"), "{err}");
        assert!(
            err.contains("validation.max_diagram_points: must be > 0, got 0"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = Config::parse(
            "[kafka]\n\"bootstrap.server\" = \"x:1\"\n",
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a.toml") && err.contains("bootstrap.server"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_guarantee_is_named() {
        let err = Config::parse(
            "[kafka]\n\"processing.guarantee\" = \"exactly_once\"\n",
            Path::new("a.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("exactly_once"), "{err}");
    }
}
