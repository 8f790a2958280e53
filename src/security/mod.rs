//! Security: secrets that never reach a log, the Kafka clients' TLS and SASL settings, and the
//! schema registry's HTTPS and authentication.
//!
//! - [`secret`]: [`Secret`] (prints `[redacted]`) and where a secret is read from.
//! - [`kafka`]: `[kafka.properties]`, `[kafka.secrets]` and `AURA_KAFKA_*`, applied to
//!   every client Aura makes.
//! - [`registry`]: the registry's CA, basic or bearer authentication.
//! - [`http`]: the bearer token of `/sagas/{id}`.
//! - [`tools`]: the same settings for `produce`, `agents` and `bench`.
//! - [`preflight`]: the start-up check that names each Kafka ACL Aura lacks.
//! - [`acls`]: the ACLs each principal needs, derived from the topology.

pub mod acls;
pub mod http;
pub mod kafka;
pub mod preflight;
pub mod registry;
pub mod secret;
pub mod tools;

pub use http::resolve_token as resolve_http_token;
pub use kafka::{client_config, resolve as resolve_kafka, ResolvedKafkaSecurity};
pub use registry::{resolve as resolve_registry, RegistryAccess, RegistryAuth};
pub use secret::{process_env, Env, Secret, SecretError, SecretSource};
pub use tools::ConnectionArgs;
