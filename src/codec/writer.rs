//! Writer schemas by id, and reading a datum written with one into a model type.
//!
//! Two ways to read, chosen once per (writer schema, reader type):
//! - direct: the writer schema has the reader's Parsing Canonical Form, so the bytes are
//!   exactly what the reader schema would have written; serde reads them straight into the
//!   model type, with no intermediate value.
//! - resolved: any other writer schema. The datum is decoded with the writer schema, then
//!   resolved against the reader schema by Avro's rules (fields added with defaults,
//!   removed fields, promotions, enum defaults), then deserialized.

use std::error::Error as _;
use std::io;
use std::sync::OnceLock;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::Schema;

use super::catalog::{self, AvroRecord};
use super::CodecError;

/// A writer schema known by id.
pub(crate) struct WriterSchema {
    id: u32,
    schema: Schema,
    /// Full name, for messages.
    name: String,
    /// Catalog index of the embedded schema with the same canonical form, if any.
    same_as: Option<usize>,
    /// Per reader (catalog index): `Err(detail)` when resolution can never succeed.
    checked: Vec<OnceLock<Result<(), String>>>,
}

impl WriterSchema {
    /// A writer schema from its JSON text, as a registry serves it.
    pub(crate) fn parse(id: u32, json: &str) -> Result<Self, CodecError> {
        let schema = Schema::parse_str(json).map_err(|e| CodecError::InvalidWriterSchema {
            id,
            detail: e.to_string(),
        })?;
        Ok(Self::new(id, schema))
    }

    /// The embedded schema at catalog `index`, served under `id`.
    pub(crate) fn embedded(id: u32, index: usize) -> Self {
        Self::new(id, catalog::prepared(index).schema.clone())
    }

    fn new(id: u32, schema: Schema) -> Self {
        let canonical = schema.canonical_form();
        let same_as = catalog::all_prepared()
            .iter()
            .position(|p| p.canonical == canonical);
        let name = schema
            .name()
            .map_or_else(|| format!("{:?}", apache_avro::schema::SchemaKind::from(&schema)), |n| n.fullname(None));
        Self {
            id,
            schema,
            name,
            same_as,
            checked: (0..catalog::EMBEDDED.len()).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Reads one datum, which must fill `datum` exactly.
    pub(crate) fn read<T: AvroRecord>(&self, datum: &[u8]) -> Result<T, CodecError> {
        let index = catalog::index_of::<T>();
        let reader = catalog::prepared(index);
        let mut rest = datum;
        let value = if self.same_as == Some(index) {
            reader
                .direct
                .read_deser::<T>(&mut rest)
                .map_err(|e| self.datum_error(e, datum.len()))?
        } else {
            self.check_resolvable(index)?;
            let written = GenericDatumReader::builder(&self.schema)
                .build()
                .and_then(|r| r.read_value(&mut rest))
                .map_err(|e| self.datum_error(e, datum.len()))?;
            let resolved = written
                .resolve_with_names(reader.schema, reader.names())
                .map_err(|e| self.unresolvable(T::SCHEMA_NAME, e.to_string()))?;
            apache_avro::from_value::<T>(&resolved).map_err(|e| self.datum_error(e, datum.len()))?
        };
        if !rest.is_empty() {
            return Err(CodecError::TrailingBytes {
                id: self.id,
                schema: self.name.clone(),
                extra: rest.len(),
            });
        }
        Ok(value)
    }

    /// Avro schema resolution fails for incompatible schemas only when it meets the
    /// difference in the data; checking the schemas once gives every record the same answer.
    fn check_resolvable(&self, index: usize) -> Result<(), CodecError> {
        let reader = catalog::prepared(index);
        self.checked[index]
            .get_or_init(|| {
                SchemaCompatibility::can_read(&self.schema, reader.schema)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|detail| self.unresolvable(reader.embedded.name, detail))
    }

    fn unresolvable(&self, reader: &'static str, detail: String) -> CodecError {
        CodecError::Unresolvable {
            id: self.id,
            writer: self.name.clone(),
            reader,
            detail,
        }
    }

    fn datum_error(&self, err: apache_avro::Error, len: usize) -> CodecError {
        if ran_out_of_input(&err) {
            CodecError::Truncated {
                id: self.id,
                schema: self.name.clone(),
                len,
            }
        } else {
            CodecError::Malformed {
                id: self.id,
                schema: self.name.clone(),
                detail: err.to_string(),
            }
        }
    }
}

fn ran_out_of_input(err: &apache_avro::Error) -> bool {
    let mut source = err.source();
    while let Some(e) = source {
        if e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        source = e.source();
    }
    false
}
