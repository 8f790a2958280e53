//! The command-line tools (`produce`, `agents`, `bench`) take the service's security
//! settings: the same `--config` file (only `[kafka]` and `[schema_registry]` matter to
//! them) and the same environment, so one set of credentials serves every client.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{builtin_origin, Config, ConfigError};

/// Where a tool finds its broker, registry and credentials.
#[derive(Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// The service's configuration file: its `[kafka]` settings (`bootstrap.servers`,
    /// `[kafka.properties]` such as `security.protocol`, `[kafka.secrets]`) and
    /// `[schema_registry]` (URL, CA, credentials) are used. `AURA_KAFKA_*` and
    /// `AURA_SCHEMA_REGISTRY_*` variables override it, as for `aura run`.
    #[arg(long, short, env = "AURA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Brokers, `host:port[,...]`; overrides the file. Default localhost:9092.
    #[arg(long, env = "AURA_BOOTSTRAP_SERVERS")]
    pub bootstrap_servers: Option<String>,
    /// Schema registry URL; overrides the file. Without either, schema ids come from the
    /// embedded catalog (only an aura without a registry can read those).
    #[arg(long, env = "AURA_SCHEMA_REGISTRY_URL")]
    pub schema_registry_url: Option<String>,
}

impl ConnectionArgs {
    /// The file's settings with the flags and environment applied, validated.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let (mut config, origin) = match &self.config {
            Some(path) => (Config::load(path)?, path.clone()),
            None => (Config::default(), builtin_origin()),
        };
        if let Some(servers) = &self.bootstrap_servers {
            config.kafka.bootstrap_servers = servers.clone();
        }
        if let Some(url) = &self.schema_registry_url {
            config.schema_registry.url = Some(url.clone()).filter(|u| !u.is_empty());
        }
        config.validated(&origin)
    }
}

/// The environment's security settings for a tool given only a bootstrap address.
pub fn env_only(bootstrap: &str) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    config.kafka.bootstrap_servers = bootstrap.to_owned();
    config.validated(Path::new("<environment>"))
}

/// The registry at `url` with the environment's CA and credentials.
pub fn registry_from_env(url: &str) -> Result<crate::security::RegistryAccess, ConfigError> {
    let mut config = Config::default();
    config.schema_registry.url = Some(url.to_owned());
    let config = config.validated(Path::new("<environment>"))?;
    Ok(config.schema_registry.access().expect("a URL was given"))
}
