//! Security settings of every Kafka client Aura makes (the service, `produce`, `agents`,
//! `bench`), from one place: `[kafka.properties]` for plain settings, `[kafka.secrets]` for
//! secrets (each read from a file or an environment variable), and `AURA_KAFKA_*` environment
//! variables, which override both.
//!
//! Settings keep librdkafka's names (`security.protocol`, `sasl.mechanism`, `sasl.username`,
//! `ssl.ca.location`), which are Kafka's own. A secret written into `[kafka.properties]` is
//! refused at start-up, so a configuration file never holds one.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;

use super::secret::{from_env, Env, Secret};
use crate::config::{KafkaConfig, Problem};

/// librdkafka properties whose values are secrets: never in `[kafka.properties]`, never logged.
pub const SECRET_PROPERTIES: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.key.pem",
    "ssl.keystore.password",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.config",
    "sasl.jaas.config",
];

/// Plain security properties that may also come from `AURA_KAFKA_<NAME>` (upper case, `.` as `_`).
pub const ENV_PROPERTIES: &[&str] = &[
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
];

/// Secret properties that may come from `AURA_KAFKA_<NAME>` or from the file `AURA_KAFKA_<NAME>_FILE`.
pub const ENV_SECRETS: &[&str] = &["sasl.password", "ssl.key.password"];

/// The security settings after secrets are read and the environment applied.
#[derive(Debug, Clone, Default)]
pub struct ResolvedKafkaSecurity {
    /// Plain properties from the environment (they override `[kafka.properties]`).
    pub properties: BTreeMap<String, String>,
    /// Secret properties, read from their files or variables.
    pub secrets: BTreeMap<String, Secret>,
}

/// `AURA_KAFKA_SASL_PASSWORD` for `sasl.password`.
pub fn env_name(property: &str) -> String {
    format!("AURA_KAFKA_{}", property.replace('.', "_").to_uppercase())
}

pub fn is_secret(property: &str) -> bool {
    SECRET_PROPERTIES.contains(&property)
}

/// Reads every secret and the environment's settings; each failure is one problem naming
/// the field and where the secret was to come from.
pub fn resolve(
    kafka: &KafkaConfig,
    env: Env<'_>,
    problems: &mut Vec<Problem>,
) -> ResolvedKafkaSecurity {
    let mut resolved = ResolvedKafkaSecurity::default();
    for name in kafka.properties.keys().filter(|k| is_secret(k)) {
        problems.push(Problem::new(
            &format!("kafka.properties.\"{name}\""),
            "[redacted]",
            &format!(
                "is a secret; give it as [kafka.secrets] \"{name}\" = {{ file = \"...\" }} or {{ env = \"...\" }}, or set {}",
                env_name(name)
            ),
        ));
    }
    for (name, source) in &kafka.secrets {
        match source.read(env) {
            Ok(secret) => {
                resolved.secrets.insert(name.clone(), secret);
            }
            Err(e) => problems.push(Problem::new(
                &format!("kafka.secrets.\"{name}\""),
                source,
                &e.to_string(),
            )),
        }
    }
    for property in ENV_PROPERTIES {
        if let Some(value) = env(&env_name(property)) {
            resolved.properties.insert(property.to_string(), value);
        }
    }
    for property in ENV_SECRETS {
        match from_env(&env_name(property), env) {
            Ok(Some(secret)) => {
                resolved.secrets.insert(property.to_string(), secret);
            }
            Ok(None) => {}
            Err(e) => problems.push(Problem::new(
                &env_name(property),
                "[redacted]",
                &e.to_string(),
            )),
        }
    }
    resolved
}

/// Sets the user's properties, then the environment's, then the secrets, on `client`. They
/// go after Aura's own settings, so they can override any of them.
pub fn apply(kafka: &KafkaConfig, client: &mut ClientConfig) {
    for (k, v) in &kafka.properties {
        client.set(k, v);
    }
    for (k, v) in &kafka.security.properties {
        client.set(k, v);
    }
    for (k, v) in &kafka.security.secrets {
        client.set(k, v.expose());
    }
}

/// A client configuration with `bootstrap.servers` and every security setting, for the
/// command-line tools that make their own producers and consumers.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &kafka.bootstrap_servers);
    apply(kafka, &mut client);
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::secret::tests::env_of;
    use crate::security::SecretSource;

    #[test]
    fn a_secret_in_properties_is_refused_without_showing_it() {
        let mut kafka = KafkaConfig::default();
        kafka
            .properties
            .insert("sasl.password".into(), "hunter2".into());
        let mut problems = Vec::new();
        resolve(&kafka, &env_of(&[]), &mut problems);
        let text = problems.iter().map(|p| p.to_string()).collect::<String>();
        assert!(
            text.contains("kafka.properties.\"sasl.password\""),
            "{text}"
        );
        assert!(text.contains("AURA_KAFKA_SASL_PASSWORD"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn environment_overrides_the_file_and_secrets_reach_the_client() {
        let mut kafka = KafkaConfig::default();
        kafka
            .properties
            .insert("security.protocol".into(), "SSL".into());
        kafka
            .secrets
            .insert("ssl.key.password".into(), SecretSource::Env("KEYPW".into()));
        let env = env_of(&[
            ("AURA_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("AURA_KAFKA_SASL_USERNAME", "aura"),
            ("AURA_KAFKA_SASL_PASSWORD", "pw-from-env"),
            ("KEYPW", "key-pw"),
        ]);
        let mut problems = Vec::new();
        kafka.security = resolve(&kafka, &env, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let client = client_config(&kafka);
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.username"), Some("aura"));
        assert_eq!(client.get("sasl.password"), Some("pw-from-env"));
        assert_eq!(client.get("ssl.key.password"), Some("key-pw"));
        let dump = format!("{kafka:?}");
        assert!(
            !dump.contains("pw-from-env") && !dump.contains("key-pw"),
            "{dump}"
        );
    }

    #[test]
    fn a_missing_secret_names_its_field_and_source() {
        let mut kafka = KafkaConfig::default();
        kafka
            .secrets
            .insert("sasl.password".into(), SecretSource::Env("GONE".into()));
        let mut problems = Vec::new();
        resolve(&kafka, &env_of(&[]), &mut problems);
        assert_eq!(
            problems[0].to_string(),
            "kafka.secrets.\"sasl.password\": environment variable GONE is not set, got { env = \"GONE\" }"
        );
    }
}
