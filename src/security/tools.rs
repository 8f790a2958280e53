//! The command-line tools (`produce`, `agents`, `bench`; `lag` reads the same file its own way)
//! take the service's security settings: the same `--config` file (only `[kafka]` and
//! `[schema_registry]` matter to them) and the same environment, so one set of credentials
//! serves every client.

use std::path::PathBuf;

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

/// Gives `to` the brokers, the Kafka security settings (`[kafka.properties]`,
/// `[kafka.secrets]` and what they resolved to) and the registry access of `from`, for a tool
/// that builds its own configuration (the bench's systems under test) on a user's connection.
pub fn carry_connection(from: &Config, to: &mut Config) {
    to.kafka.bootstrap_servers = from.kafka.bootstrap_servers.clone();
    to.kafka.properties = from.kafka.properties.clone();
    to.kafka.secrets = from.kafka.secrets.clone();
    to.kafka.security = from.kafka.security.clone();
    to.kafka.replication_factor = from.kafka.replication_factor;
    to.schema_registry = from.schema_registry.clone();
}
