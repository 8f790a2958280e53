//! Codec errors, classed as the service handles them: poison (the record goes to the
//! dead-letter topic), transient (retry with backoff) or fatal (bad configuration).

use thiserror::Error;

/// Why a record could not be encoded or decoded.
///
/// Messages name the input that failed and never repeat a source error, so a message is a
/// dead-letter reason as it stands.
#[derive(Debug, Clone, Error)]
pub enum CodecError {
    // Poison: the record itself is at fault.
    /// Shorter than magic byte plus schema id.
    #[error("record is {len} bytes, shorter than the 5-byte Confluent header")]
    TooShort { len: usize },
    #[error("record has no Confluent magic byte (first byte {first:#04x})")]
    NoMagicByte { first: u8 },
    #[error("unknown schema id {id}")]
    UnknownSchemaId { id: u32 },
    #[error("schema id {id} is a {schema_type} schema, not Avro")]
    NotAvro { id: u32, schema_type: String },
    #[error("writer schema id {id} is not a valid Avro schema: {detail}")]
    InvalidWriterSchema { id: u32, detail: String },
    /// Recursive, too deep or too large to decode safely (see `codec::limits`).
    #[error("writer schema id {id} is refused: {detail}")]
    SchemaTooComplex { id: u32, detail: String },
    /// The writer schema cannot be resolved against the reader schema.
    #[error("writer schema id {id} ({writer}) cannot be read as {reader}: {detail}")]
    Unresolvable {
        id: u32,
        writer: String,
        reader: &'static str,
        detail: String,
    },
    #[error("truncated Avro datum: the {len} bytes after the header end inside a {schema} (schema id {id})")]
    Truncated { id: u32, schema: String, len: usize },
    #[error("malformed Avro datum for {schema} (schema id {id}): {detail}")]
    Malformed {
        id: u32,
        schema: String,
        detail: String,
    },
    #[error("{extra} trailing bytes after the {schema} datum (schema id {id})")]
    TrailingBytes {
        id: u32,
        schema: String,
        extra: usize,
    },

    /// The registry refused to serve the writer schema (a 4xx other than 404), or answered
    /// with something that is not a schema, every time it was asked.
    #[error("schema registry {url} would not serve writer schema id {id}: {detail}")]
    RegistryRefused {
        url: String,
        id: u32,
        detail: String,
    },

    // Transient: retrying later can succeed.
    #[error("schema registry {url} unavailable: {detail}")]
    RegistryUnavailable { url: String, detail: String },

    // Fatal: configuration or programming errors.
    #[error("no schema named {name} in the embedded catalog")]
    UnknownSchemaName { name: String },
    #[error("topic {topic} has no registered schema: it was not among the written topics given at start-up")]
    TopicNotRegistered { topic: String },
    #[error("topic {topic} is registered for {registered}, not {requested}")]
    WrongSchemaForTopic {
        topic: String,
        registered: &'static str,
        requested: &'static str,
    },
    #[error("schema registry {url} rejected {subject}: {detail}")]
    Registration {
        url: String,
        subject: String,
        detail: String,
    },
    #[error("could not encode {schema}: {detail}")]
    Encode {
        schema: &'static str,
        detail: String,
    },
}

impl CodecError {
    /// Retrying later can succeed; the record must not be dead-lettered.
    pub fn is_transient(&self) -> bool {
        matches!(self, CodecError::RegistryUnavailable { .. })
    }

    /// The record can never be decoded; it belongs on the dead-letter topic.
    pub fn is_poison(&self) -> bool {
        matches!(
            self,
            CodecError::TooShort { .. }
                | CodecError::NoMagicByte { .. }
                | CodecError::UnknownSchemaId { .. }
                | CodecError::NotAvro { .. }
                | CodecError::InvalidWriterSchema { .. }
                | CodecError::Unresolvable { .. }
                | CodecError::Truncated { .. }
                | CodecError::Malformed { .. }
                | CodecError::TrailingBytes { .. }
                | CodecError::RegistryRefused { .. }
                | CodecError::SchemaTooComplex { .. }
        )
    }

    /// A stable, low-cardinality name for metrics labels and `DeadLetter::error_class`.
    pub fn class(&self) -> &'static str {
        match self {
            CodecError::TooShort { .. } => "too_short",
            CodecError::NoMagicByte { .. } => "no_magic_byte",
            CodecError::UnknownSchemaId { .. } => "unknown_schema_id",
            CodecError::NotAvro { .. } => "not_avro",
            CodecError::InvalidWriterSchema { .. } => "invalid_writer_schema",
            CodecError::Unresolvable { .. } => "unresolvable_schema",
            CodecError::Truncated { .. } => "truncated_avro",
            CodecError::Malformed { .. } => "malformed_avro",
            CodecError::TrailingBytes { .. } => "trailing_bytes",
            CodecError::RegistryUnavailable { .. } => "registry_unavailable",
            CodecError::RegistryRefused { .. } => "registry_refused",
            CodecError::SchemaTooComplex { .. } => "writer_schema_too_complex",
            CodecError::UnknownSchemaName { .. } => "unknown_schema_name",
            CodecError::TopicNotRegistered { .. } => "topic_not_registered",
            CodecError::WrongSchemaForTopic { .. } => "wrong_schema_for_topic",
            CodecError::Registration { .. } => "registration_rejected",
            CodecError::Encode { .. } => "encode",
        }
    }
}

/// Avro errors can print whole values and schemas; a dead-letter reason needs the first
/// few hundred characters.
pub(crate) fn brief(err: impl std::fmt::Display) -> String {
    const MAX: usize = 400;
    let mut text = err.to_string();
    if text.len() > MAX {
        let mut cut = MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_keeps_short_messages_and_cuts_long_ones_on_a_char_boundary() {
        assert_eq!(brief("short"), "short");
        let long = "é".repeat(300);
        let cut = brief(&long);
        assert!(cut.ends_with("...") && cut.len() <= 403, "{}", cut.len());
    }

    #[test]
    fn classes_follow_the_error_kind() {
        let unknown = CodecError::UnknownSchemaId { id: 4242 };
        assert!(unknown.is_poison() && !unknown.is_transient());
        assert_eq!(unknown.class(), "unknown_schema_id");
        let down = CodecError::RegistryUnavailable {
            url: "http://registry".into(),
            detail: "connection refused".into(),
        };
        assert!(down.is_transient() && !down.is_poison());
        let config = CodecError::TopicNotRegistered { topic: "t".into() };
        assert!(!config.is_transient() && !config.is_poison());
    }
}
