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
pub use sagas::{Canary, SagasConfig};
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
    /// The live agent registry (`agent.registry`).
    pub registry: crate::control_plane::RegistryConfig,
    /// Signed commands and authenticated agent answers (the keyring).
    pub agent_auth: crate::auth::AgentAuthConfig,
}

/// Where the schema registry is and how to authenticate to it. Each field can also come from
/// the environment (`AURA_SCHEMA_REGISTRY_USERNAME`, `_PASSWORD` or `_PASSWORD_FILE`,
/// `_TOKEN` or `_TOKEN_FILE`, `_CA_LOCATION`), which overrides the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g. `http://localhost:8081` or Apicurio's
    /// `http://localhost:8080/apis/ccompat/v7`. Empty means the embedded schema catalog.
    /// Credentials never go in the URL.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM file of the CA(s) that sign the registry's HTTPS certificate, trusted in addition
    /// to the system's.
    #[serde(rename = "ssl.ca.location", default)]
    pub ca_location: Option<PathBuf>,
    /// User for HTTP basic authentication (Confluent Cloud: the API key).
    #[serde(default)]
    pub username: Option<String>,
    /// Password for basic authentication: `{ file = "PATH" }` or `{ env = "VAR" }`.
    #[serde(default)]
    pub password: Option<crate::security::SecretSource>,
    /// Bearer token, instead of basic authentication: `{ file = "PATH" }` or `{ env = "VAR" }`.
    #[serde(default)]
    pub token: Option<crate::security::SecretSource>,
    /// The URL, CA and credentials after secrets are read, set during validation.
    #[serde(skip)]
    pub resolved: Option<crate::security::RegistryAccess>,
}

impl SchemaRegistryConfig {
    /// How to reach the registry, `None` for the embedded catalog. A configuration that was
    /// never validated (built in code) gets the plain URL.
    pub fn access(&self) -> Option<crate::security::RegistryAccess> {
        self.resolved.clone().or_else(|| {
            self.url
                .as_deref()
                .map(crate::security::RegistryAccess::plain)
        })
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, `host:port`. Port 0 picks a free port (logged at start-up).
    /// The default, `0.0.0.0:8080`, is for containers, whose probes and Prometheus come from
    /// outside; on a shared host use `127.0.0.1:8080` unless another machine must scrape it.
    pub listen: String,
    /// The bearer token `/sagas/{id}` requires, `{ file = "PATH" }` or `{ env = "VAR" }`
    /// (`AURA_HTTP_TOKEN` or `AURA_HTTP_TOKEN_FILE` override it). `/metrics`, `/healthz` and
    /// `/readyz` stay open. Without one, `/sagas/{id}` is open too.
    #[serde(default)]
    pub token: Option<crate::security::SecretSource>,
    /// Longest a request may take, in milliseconds; a slower one (a stuck partition task)
    /// is answered 503.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// The token, read during validation.
    #[serde(skip)]
    pub resolved_token: Option<crate::security::Secret>,
}

fn default_request_timeout_ms() -> u64 {
    5_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            token: None,
            request_timeout_ms: default_request_timeout_ms(),
            resolved_token: None,
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

    /// Checks every field, reads the secrets and applies the environment's security settings
    /// (`AURA_KAFKA_*`, `AURA_SCHEMA_REGISTRY_*`); returns every problem at once.
    pub fn validated(self, origin: &Path) -> Result<Self, ConfigError> {
        self.validated_with_env(origin, &crate::security::process_env)
    }

    /// [`Config::validated`] with the environment given, for tests.
    pub fn validated_with_env(
        mut self,
        origin: &Path,
        env: crate::security::Env<'_>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        self.kafka.security = crate::security::resolve_kafka(&self.kafka, env, &mut problems);
        self.schema_registry.resolved =
            crate::security::resolve_registry(&self.schema_registry, env, &mut problems);
        self.agent_auth.resolve(env, &mut problems);
        self.http.resolved_token =
            crate::security::resolve_http_token(&self.http, env, &mut problems);
        if self.http.request_timeout_ms == 0 {
            problems.push(Problem::new("http.request_timeout_ms", 0, "must be > 0"));
        }
        self.kafka.validate(&mut problems);
        self.topics.validate(&mut problems);
        self.validation.validate(&mut problems);
        self.correlation.validate(&mut problems);
        self.registry.validate(&mut problems);
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
                    if url.contains('@') { "[redacted]" } else { url },
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
