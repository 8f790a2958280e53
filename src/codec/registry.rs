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
    /// The registry answered 2xx with a body that is not what was asked for.
    Unreadable(String),
}

/// Tries of a writer-schema fetch the registry refused (4xx other than 404) or answered
/// with an unreadable body, before the record is given up as poison. Such answers do not
/// heal by waiting, unlike an unreachable registry, so they are not retried forever.
const REFUSED_TRIES: u32 = 3;

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
                Failure::Rejected(detail) | Failure::Unreadable(detail) => {
                    self.rejected(subject, detail)
                }
            }),
        }
    }

    /// The JSON text of the Avro schema registered under `id`. An unreachable registry is
    /// transient (the caller retries); a refusal or an unreadable answer is tried
    /// [`REFUSED_TRIES`] times, then is poison for the record.
    pub(crate) async fn fetch(&self, id: u32) -> Result<String, CodecError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.fetch_once(id).await {
                Err(CodecError::RegistryRefused { detail, .. }) if tries < REFUSED_TRIES => {
                    tracing::warn!(
                        id,
                        tries,
                        detail,
                        "schema registry refused a writer schema; trying again"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                other => return other,
            }
        }
    }

    async fn fetch_once(&self, id: u32) -> Result<String, CodecError> {
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
                Failure::Unavailable(detail) => self.unavailable(detail),
                Failure::Rejected(detail) | Failure::Unreadable(detail) => {
                    CodecError::RegistryRefused {
                        url: self.url.clone(),
                        id,
                        detail,
                    }
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
        // The registry answered 2xx with a body that is not a schema.
        (None, _) => Failure::Unreadable(describe(err)),
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
        let forbidden = SRCError::non_retryable_with_cause(
            "denied",
            "HTTP request to schema registry failed with status 403 Forbidden",
        );
        assert!(matches!(classify(&forbidden), Failure::Rejected(_)));
        let garbage = SRCError::non_retryable_with_cause(
            "expected value",
            "could not parse to RawRegisteredSchema",
        );
        assert!(matches!(classify(&garbage), Failure::Unreadable(_)));
    }

    /// A registry that answers 403, or 200 with a body that is not a schema, once per
    /// request: the fetch gives up after [`REFUSED_TRIES`] with a poison error, where it
    /// used to report the registry unavailable and so be retried forever.
    #[tokio::test]
    async fn a_refusing_or_garbled_registry_is_not_retried_forever() {
        for (status, body) in [
            (
                "403 Forbidden",
                "{\"error_code\":40301,\"message\":\"denied\"}",
            ),
            ("200 OK", "this is not json"),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
            let counter = answered.clone();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let server = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                loop {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = socket.write_all(response.as_bytes()).await;
                }
            });
            let registry = Registry::new(&crate::security::RegistryAccess::plain(&url)).unwrap();
            let error = tokio::time::timeout(Duration::from_secs(20), registry.fetch(7))
                .await
                .expect("the fetch gave up in time")
                .unwrap_err();
            server.abort();
            assert!(
                error.is_poison() && !error.is_transient(),
                "{status}: {error}"
            );
            assert_eq!(error.class(), "registry_refused");
            assert_eq!(
                answered.load(std::sync::atomic::Ordering::SeqCst),
                REFUSED_TRIES,
                "{status}"
            );
        }
    }
}
