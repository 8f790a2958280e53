//! The Confluent-compatible Schema Registry client: registering the schemas the service
//! writes, and fetching writer schemas by id. HTTP is schema_registry_converter's.

use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{
    get_schema_by_id, post_schema, SrSettings,
};

use crate::security::RegistryAccess;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawError, SchemaType, SuppliedSchema};

use super::catalog::EmbeddedSchema;
use super::CodecError;

/// How long one registry call may take before it counts as unavailable.
const TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Registry {
    url: String,
    settings: SrSettings,
}

/// A failed registry call, sorted by whose fault it is.
enum Failure {
    /// The registry answered 404.
    NotFound,
    /// The registry answered, and refused (409 incompatible, 422 invalid schema, ...).
    Rejected(String),
    /// The registry could not be reached, or failed itself (5xx, bad gateway, timeout).
    Unavailable(String),
}

impl Registry {
    pub(crate) fn new(access: &RegistryAccess) -> Result<Self, CodecError> {
        let settings =
            access
                .settings(TIMEOUT)
                .map_err(|detail| CodecError::RegistryUnavailable {
                    url: access.url.clone(),
                    detail,
                })?;
        Ok(Self {
            url: access.url.clone(),
            settings,
        })
    }

    /// Registers `schema` under `subject` and returns its id; registering a schema the
    /// subject already has returns the existing id.
    pub(crate) async fn register(
        &self,
        subject: &str,
        schema: &EmbeddedSchema,
    ) -> Result<u32, CodecError> {
        let supplied = SuppliedSchema::new(
            Some(schema.name.to_owned()),
            SchemaType::Avro,
            schema.json.to_owned(),
        );
        match post_schema(&self.settings, subject.to_owned(), supplied).await {
            Ok(registered) => Ok(registered.id),
            Err(e) => Err(match classify(&e) {
                Failure::Unavailable(detail) => self.unavailable(detail),
                Failure::NotFound => self.rejected(subject, describe(&e)),
                Failure::Rejected(detail) => self.rejected(subject, detail),
            }),
        }
    }

    /// The JSON text of the Avro schema registered under `id`.
    pub(crate) async fn fetch(&self, id: u32) -> Result<String, CodecError> {
        match get_schema_by_id(id, &self.settings).await {
            Ok(registered) => {
                let schema_type = match registered.schema_type {
                    SchemaType::Avro => return Ok(registered.schema),
                    SchemaType::Protobuf => "PROTOBUF".to_owned(),
                    SchemaType::Json => "JSON".to_owned(),
                    SchemaType::Other(other) => other,
                    _ => "non-Avro".to_owned(),
                };
                Err(CodecError::NotAvro { id, schema_type })
            }
            Err(e) => Err(match classify(&e) {
                Failure::NotFound => CodecError::UnknownSchemaId { id },
                // A registry that refuses to serve an id is misconfigured (auth, proxy);
                // the record is not at fault, so retry rather than dead-letter.
                Failure::Rejected(detail) | Failure::Unavailable(detail) => {
                    self.unavailable(detail)
                }
            }),
        }
    }

    fn unavailable(&self, detail: String) -> CodecError {
        CodecError::RegistryUnavailable {
            url: self.url.clone(),
            detail,
        }
    }

    fn rejected(&self, subject: &str, detail: String) -> CodecError {
        CodecError::Registration {
            url: self.url.clone(),
            subject: subject.to_owned(),
            detail,
        }
    }
}

/// schema_registry_converter reports an HTTP error status in its message
/// ("... failed with status 404 Not Found") with the registry's JSON error as the source,
/// and a connection failure as retriable.
fn classify(err: &SRCError) -> Failure {
    if err.retriable {
        return Failure::Unavailable(describe(err));
    }
    let raw = std::error::Error::source(err).and_then(|s| s.downcast_ref::<RawError>());
    let status = http_status(&err.error);
    match (status, raw) {
        (Some(404), _) => Failure::NotFound,
        (_, Some(raw)) if raw.error_code / 100 == 404 => Failure::NotFound,
        (Some(s), _) if s >= 500 => Failure::Unavailable(describe(err)),
        (Some(_), _) => Failure::Rejected(describe(err)),
        // The registry answered 2xx with a body that is not a schema: not the record's fault.
        (None, _) => Failure::Unavailable(describe(err)),
    }
}

fn http_status(message: &str) -> Option<u16> {
    let (_, rest) = message.split_once("status ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// What went wrong, once: the converter's message, then each distinct cause down to the
/// root (reqwest keeps "connection refused" a few sources deep).
fn describe(err: &SRCError) -> String {
    let mut message = err.error.clone();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_out_of_the_converters_message() {
        assert_eq!(
            http_status("HTTP request to schema registry failed with status 404 Not Found"),
            Some(404)
        );
        assert_eq!(http_status("http call to schema registry failed"), None);
    }

    #[test]
    fn sorts_failures_by_fault() {
        let not_found = SRCError::non_retryable_with_cause(
            "not json",
            "HTTP request to schema registry failed with status 404 Not Found",
        );
        assert!(matches!(classify(&not_found), Failure::NotFound));
        let down = SRCError::retryable_with_cause("refused", "http call to schema registry failed");
        assert!(matches!(classify(&down), Failure::Unavailable(_)));
        let broken = SRCError::non_retryable_with_cause(
            "boom",
            "HTTP request to schema registry failed with status 500 Internal Server Error",
        );
        assert!(matches!(classify(&broken), Failure::Unavailable(_)));
        let incompatible = SRCError::non_retryable_with_cause(
            "incompatible",
            "HTTP request to schema registry failed with status 409 Conflict",
        );
        assert!(matches!(classify(&incompatible), Failure::Rejected(_)));
    }
}
