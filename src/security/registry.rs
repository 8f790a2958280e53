//! How Aura reaches the schema registry: HTTPS with an optional private CA, and basic or
//! bearer authentication. Credentials go into the HTTP client and nowhere else: they are
//! not in the URL (a URL with `user:password@` is refused at start-up, because URLs appear in
//! errors and logs), and their `Debug` prints `[redacted]`.

use std::path::PathBuf;
use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::SrSettings;

use super::secret::{from_env, Env, Secret};
use crate::config::{Problem, SchemaRegistryConfig};

/// How requests to the registry authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RegistryAuth {
    #[default]
    None,
    /// HTTP basic authentication (Confluent Cloud: API key and secret).
    Basic { username: String, password: Secret },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
}

/// Everything needed to talk to one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAccess {
    pub url: String,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_location: Option<PathBuf>,
    pub auth: RegistryAuth,
}

impl RegistryAccess {
    /// A registry with no authentication and the system's CAs.
    pub fn plain(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ca_location: None,
            auth: RegistryAuth::None,
        }
    }

    /// The converter's settings: one HTTP client with the CA and credentials set. Errors
    /// name the CA file, never a credential.
    pub fn settings(&self, timeout: Duration) -> Result<SrSettings, String> {
        let mut builder = SrSettings::new_builder(self.url.trim_end_matches('/').to_owned());
        builder.set_timeout(timeout);
        match &self.auth {
            RegistryAuth::None => {}
            RegistryAuth::Basic { username, password } => {
                builder.set_basic_authorization(username, Some(password.expose()));
            }
            RegistryAuth::Bearer(token) => {
                builder.set_token_authorization(token.expose());
            }
        }
        let mut client = reqwest_sr::Client::builder();
        if let Some(path) = &self.ca_location {
            let pem = std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read schema_registry.ssl.ca.location {}: {e}",
                    path.display()
                )
            })?;
            let certs = reqwest_sr::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "schema_registry.ssl.ca.location {} is not PEM: {e}",
                    path.display()
                )
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "schema_registry.ssl.ca.location {} holds no PEM certificate",
                    path.display()
                ));
            }
            client = client.tls_certs_merge(certs);
        }
        builder
            .build_with(client)
            .map_err(|e| format!("cannot build the registry client: {}", e.error))
    }
}

/// Env names for the registry's settings: each overrides its `[schema_registry]` field.
pub const ENV_USERNAME: &str = "AURA_SCHEMA_REGISTRY_USERNAME";
pub const ENV_PASSWORD: &str = "AURA_SCHEMA_REGISTRY_PASSWORD";
pub const ENV_TOKEN: &str = "AURA_SCHEMA_REGISTRY_TOKEN";
pub const ENV_CA_LOCATION: &str = "AURA_SCHEMA_REGISTRY_CA_LOCATION";

/// The access described by `[schema_registry]` and the environment, or `None` without a URL.
/// Every unreadable secret or contradictory setting is one problem.
pub fn resolve(
    config: &SchemaRegistryConfig,
    env: Env<'_>,
    problems: &mut Vec<Problem>,
) -> Option<RegistryAccess> {
    let mut secret = |field: &str, from_file: &Option<super::SecretSource>, env_name: &str| {
        let from_environment = from_env(env_name, env).unwrap_or_else(|e| {
            problems.push(Problem::new(env_name, "[redacted]", &e.to_string()));
            None
        });
        from_environment.or_else(|| {
            let source = from_file.as_ref()?;
            source
                .read(env)
                .map_err(|e| problems.push(Problem::new(field, source, &e.to_string())))
                .ok()
        })
    };
    let password = secret("schema_registry.password", &config.password, ENV_PASSWORD);
    let token = secret("schema_registry.token", &config.token, ENV_TOKEN);
    let username = env(ENV_USERNAME).or_else(|| config.username.clone());
    let ca_location = env(ENV_CA_LOCATION)
        .map(PathBuf::from)
        .or_else(|| config.ca_location.clone());
    let url = config.url.as_ref()?;
    if has_credentials(url) {
        problems.push(Problem::new(
            "schema_registry.url",
            "[redacted]",
            "must not hold credentials (user:password@); use schema_registry.username and password",
        ));
    }
    let auth = match (username, password, token) {
        (_, _, Some(_)) if config.username.is_some() || config.password.is_some() => {
            problems.push(Problem::new(
                "schema_registry.token",
                "[redacted]",
                "give either username and password or a token, not both",
            ));
            RegistryAuth::None
        }
        (None, None, Some(token)) => RegistryAuth::Bearer(token),
        (Some(username), Some(password), _) => RegistryAuth::Basic { username, password },
        (None, None, None) => RegistryAuth::None,
        (Some(username), None, _) => {
            problems.push(Problem::new(
                "schema_registry.password",
                "",
                &format!("is needed with username {username:?} (or set {ENV_PASSWORD})"),
            ));
            RegistryAuth::None
        }
        (None, Some(_), _) => {
            problems.push(Problem::new(
                "schema_registry.username",
                "",
                &format!("is needed with a password (or set {ENV_USERNAME})"),
            ));
            RegistryAuth::None
        }
    };
    Some(RegistryAccess {
        url: url.clone(),
        ca_location,
        auth,
    })
}

fn has_credentials(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or("");
    authority.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::secret::tests::env_of;

    fn config(url: &str) -> SchemaRegistryConfig {
        SchemaRegistryConfig {
            url: Some(url.into()),
            ..Default::default()
        }
    }

    #[test]
    fn basic_auth_from_the_environment() {
        let env = env_of(&[(ENV_USERNAME, "aura"), (ENV_PASSWORD, "sr-pw")]);
        let mut problems = Vec::new();
        let access = resolve(&config("https://sr:8081"), &env, &mut problems).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            access.auth,
            RegistryAuth::Basic {
                username: "aura".into(),
                password: Secret::new("sr-pw")
            }
        );
        assert!(!format!("{access:?}").contains("sr-pw"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_echoing_them() {
        let mut problems = Vec::new();
        resolve(&config("https://u:pw@sr:8081"), &env_of(&[]), &mut problems);
        let text = problems[0].to_string();
        assert!(
            text.starts_with("schema_registry.url: must not hold credentials"),
            "{text}"
        );
        assert!(!text.contains("pw@"), "{text}");
    }

    #[test]
    fn a_username_without_password_is_named() {
        let mut c = config("https://sr:8081");
        c.username = Some("aura".into());
        let mut problems = Vec::new();
        resolve(&c, &env_of(&[]), &mut problems);
        assert!(problems[0].to_string().contains("schema_registry.password"));
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let access = RegistryAccess {
            ca_location: Some(path.clone()),
            ..RegistryAccess::plain("https://sr:8081")
        };
        let err = access.settings(Duration::from_secs(1)).unwrap_err();
        assert!(err.contains("ca.pem"), "{err}");
    }
}
