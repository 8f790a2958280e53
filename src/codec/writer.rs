//! Writer schemas by id, and reading a datum written with one into a model type.
//!
//! How to read is decided once per (writer schema, reader type):
//! - direct: every field the reader schema has, the writer has too, with the same type
//!   (the writer may have more). That covers the writer being the reader schema itself and
//!   a newer schema that only added fields. serde reads the bytes straight into the model
//!   type with the writer schema and skips what the type does not have: no intermediate
//!   value, no resolution.
//! - resolved: any other compatible writer. The datum is decoded into an Avro value with
//!   the writer schema, resolved against the reader schema by Avro's rules (defaults for
//!   missing fields, promotions, enum defaults), then deserialized. About ten times
//!   slower, and right in every case the schemas allow.
//! - unresolvable: the schemas are incompatible; every record is poison, without reading.

use std::collections::HashMap;
use std::error::Error as _;
use std::io;
use std::sync::{Mutex, OnceLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::schema::{NamesRef, ResolvedSchema, SchemaKind};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::catalog::{self, AvroRecord};
use super::error::brief;
use super::CodecError;

/// A writer schema known by id.
pub(crate) struct WriterSchema {
    id: u32,
    /// Full name, for messages.
    name: String,
    schema: &'static Schema,
    resolved: ResolvedSchema<'static>,
    /// Decodes with the writer schema alone.
    reader: GenericDatumReader<'static>,
    /// Per reader type (catalog index), decided on first use.
    plans: Vec<OnceLock<Plan>>,
}

#[derive(Debug, Clone)]
enum Plan {
    Direct,
    Resolve,
    Unresolvable(String),
}

impl WriterSchema {
    /// A writer schema from its JSON text, as a registry serves it.
    pub(crate) fn parse(id: u32, json: &str) -> Result<Self, CodecError> {
        let invalid = |e: apache_avro::Error| CodecError::InvalidWriterSchema {
            id,
            detail: brief(e),
        };
        let too_complex = |detail| CodecError::SchemaTooComplex { id, detail };
        super::limits::check_text(json).map_err(too_complex)?;
        super::limits::check_integer_attributes(json)
            .map_err(|detail| CodecError::InvalidWriterSchema { id, detail })?;
        // apache-avro 0.22 panics on some invalid schemas instead of returning an error (a
        // "size" that is not an integer, refused just above, made its canonical form panic;
        // found by the writer_schema fuzz target). Any other such panic is caught here too
        // (where panics unwind, as in the service): a hostile registry answer must be poison,
        // not a panic in every task that reads the id.
        let schema = std::panic::catch_unwind(|| {
            let parsed = Schema::parse_str(json).map_err(invalid)?;
            // Before interning: a refused schema must not stay in memory for good.
            super::limits::check(&parsed).map_err(too_complex)?;
            super::limits::check_canonical_form(&parsed)
                .map_err(|detail| CodecError::InvalidWriterSchema { id, detail })?;
            Ok(intern(parsed))
        })
        .map_err(|panic| CodecError::InvalidWriterSchema {
            id,
            detail: format!("the Avro parser failed on it: {}", panic_text(&panic)),
        })??;
        Self::new(id, schema).map_err(invalid)
    }

    /// The embedded schema at catalog `index`, served under `id`.
    pub(crate) fn embedded(id: u32, index: usize) -> Self {
        Self::new(id, catalog::prepared(index).schema)
            .unwrap_or_else(|e| panic!("embedded schema {index} does not resolve: {e}"))
    }

    fn new(id: u32, schema: &'static Schema) -> apache_avro::AvroResult<Self> {
        let resolved = ResolvedSchema::new(schema)?;
        let reader = GenericDatumReader::builder(schema)
            .resolved_writer_schemata(resolved.clone())
            .build()?;
        let name = schema.name().map_or_else(
            || format!("{:?}", SchemaKind::from(schema)),
            |n| n.fullname(None),
        );
        Ok(Self {
            id,
            name,
            schema,
            resolved,
            reader,
            plans: (0..catalog::EMBEDDED.len())
                .map(|_| OnceLock::new())
                .collect(),
        })
    }

    /// Reads one datum into `T`; the datum must be exactly one record.
    pub(crate) fn read<T: AvroRecord>(&self, datum: &[u8]) -> Result<T, CodecError> {
        let index = catalog::index_of::<T>();
        let mut rest = datum;
        let value = match self.plans[index].get_or_init(|| self.plan(index)) {
            Plan::Direct => self
                .reader
                .read_deser::<T>(&mut rest)
                .map_err(|e| self.datum_error(e, datum.len()))?,
            Plan::Resolve => {
                let reader = catalog::prepared(index);
                let written = self
                    .reader
                    .read_value(&mut rest)
                    .map_err(|e| self.datum_error(e, datum.len()))?;
                let resolved = written
                    .resolve_with_names(reader.schema, reader.names())
                    .map_err(|e| self.unresolvable(T::SCHEMA_NAME, brief(e)))?;
                apache_avro::from_value::<T>(&resolved)
                    .map_err(|e| self.datum_error(e, datum.len()))?
            }
            Plan::Unresolvable(detail) => {
                return Err(self.unresolvable(T::SCHEMA_NAME, detail.clone()))
            }
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

    fn plan(&self, index: usize) -> Plan {
        let reader = catalog::prepared(index);
        // Resolution of incompatible schemas fails only when it meets the difference in
        // the data; checking the schemas gives every record the same answer.
        if let Err(e) = SchemaCompatibility::can_read(self.schema, reader.schema) {
            return Plan::Unresolvable(brief(e));
        }
        let names = (self.resolved.get_names(), reader.names());
        if covers(self.schema, reader.schema, names, 0) {
            Plan::Direct
        } else {
            Plan::Resolve
        }
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
                detail: brief(err),
            }
        }
    }
}

/// Whether data written with `writer` deserializes into the reader's type exactly as Avro
/// resolution would produce it: every reader field is in the writer under the same name
/// with a type that is covered in turn, unions have the same branches in the same order,
/// enums the same symbols. Anything else (and anything nested absurdly deep) is left to
/// resolution.
fn covers(
    writer: &Schema,
    reader: &Schema,
    names: (&NamesRef<'_>, &NamesRef<'_>),
    depth: usize,
) -> bool {
    const MAX_DEPTH: usize = 32;
    let (Some(writer), Some(reader)) = (deref(writer, names.0), deref(reader, names.1)) else {
        return false;
    };
    if depth > MAX_DEPTH {
        return false;
    }
    match (writer, reader) {
        (Schema::Record(w), Schema::Record(r)) => {
            w.name == r.name
                && r.fields.iter().all(|rf| {
                    w.lookup
                        .get(&rf.name)
                        .is_some_and(|&i| covers(&w.fields[i].schema, &rf.schema, names, depth + 1))
                })
        }
        (Schema::Enum(w), Schema::Enum(r)) => w.name == r.name && w.symbols == r.symbols,
        (Schema::Array(w), Schema::Array(r)) => covers(&w.items, &r.items, names, depth + 1),
        (Schema::Map(w), Schema::Map(r)) => covers(&w.types, &r.types, names, depth + 1),
        (Schema::Union(w), Schema::Union(r)) => {
            w.variants().len() == r.variants().len()
                && w.variants()
                    .iter()
                    .zip(r.variants())
                    .all(|(w, r)| covers(w, r, names, depth + 1))
        }
        (
            Schema::Null
            | Schema::Boolean
            | Schema::Int
            | Schema::Long
            | Schema::Float
            | Schema::Double
            | Schema::Bytes
            | Schema::String
            | Schema::TimestampMillis,
            _,
        ) => SchemaKind::from(writer) == SchemaKind::from(reader),
        _ => false,
    }
}

fn deref<'a>(schema: &'a Schema, names: &'a NamesRef<'_>) -> Option<&'a Schema> {
    match schema {
        Schema::Ref { name } => names.get(name).copied(),
        other => Some(other),
    }
}

/// Gives a parsed writer schema the life of the process, once per distinct schema.
///
/// Decoding borrows the schema, and a schema owned by the cache entry that also holds
/// the decoder would make the entry self-referential. Writer schemas are few (the
/// registry's versions of our records) and cached for good anyway; one identical to an
/// embedded schema reuses that one.
fn intern(schema: Schema) -> &'static Schema {
    static INTERNED: OnceLock<Mutex<HashMap<String, &'static Schema>>> = OnceLock::new();
    let canonical = schema.canonical_form();
    if let Some(embedded) = catalog::all_prepared()
        .iter()
        .find(|p| p.canonical == canonical)
    {
        return embedded.schema;
    }
    // The canonical form drops logical types and defaults; the full JSON keeps them.
    let key = serde_json::to_string(&schema).unwrap_or(canonical);
    let mut interned = INTERNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    interned
        .entry(key)
        .or_insert_with(|| Box::leak(Box::new(schema)))
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

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into());
    brief(text)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value as Json};

    use super::*;
    use crate::model::TdaAnomaly;

    fn anomaly_json(edit: impl FnOnce(&mut Json)) -> String {
        let mut json: Json = serde_json::from_str(catalog::EMBEDDED[0].json).unwrap();
        edit(&mut json);
        json.to_string()
    }

    fn plan_for_anomaly(writer_json: &str) -> Plan {
        let writer = WriterSchema::parse(1000, writer_json).unwrap();
        writer.plan(catalog::index_of::<TdaAnomaly>())
    }

    #[test]
    fn own_schema_is_read_directly() {
        let writer = WriterSchema::embedded(1, 0);
        assert!(matches!(writer.plan(0), Plan::Direct));
    }

    #[test]
    fn added_fields_anywhere_are_read_directly() {
        let newer = anomaly_json(|s| {
            let fields = s["fields"].as_array_mut().unwrap();
            fields.insert(
                0,
                json!({"name": "region", "type": ["null", "string"], "default": null}),
            );
            // The nested PersistencePoint gains a field too.
            let point = &mut fields[8]["type"]["items"];
            assert_eq!(point["name"], "PersistencePoint");
            point["fields"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "weight", "type": "double", "default": 1.0}));
        });
        assert!(matches!(plan_for_anomaly(&newer), Plan::Direct));
    }

    #[test]
    fn removed_fields_and_changed_enums_are_resolved() {
        let older = anomaly_json(|s| {
            s["fields"]
                .as_array_mut()
                .unwrap()
                .retain(|f| f["name"] != "tags");
        });
        assert!(matches!(plan_for_anomaly(&older), Plan::Resolve));
        let fewer_severities = anomaly_json(|s| {
            s["fields"][5]["type"]["symbols"] = json!(["LOW", "HIGH"]);
        });
        assert!(matches!(plan_for_anomaly(&fewer_severities), Plan::Resolve));
        let promoted = anomaly_json(|s| {
            s["fields"][6]["type"]["items"] = json!("int");
            s["fields"][4]["type"] = json!("float");
        });
        assert!(matches!(plan_for_anomaly(&promoted), Plan::Resolve));
    }

    #[test]
    fn incompatible_schemas_are_unresolvable_up_front() {
        let renamed = anomaly_json(|s| s["fields"][0]["name"] = json!("id"));
        assert!(matches!(plan_for_anomaly(&renamed), Plan::Unresolvable(_)));
        let context = WriterSchema::embedded(2, 1);
        assert!(matches!(context.plan(0), Plan::Unresolvable(_)));
    }

    #[test]
    fn the_same_schema_twice_is_interned_once() {
        let newer = anomaly_json(|s| {
            s["fields"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "zone", "type": "string", "default": ""}));
        });
        let a = WriterSchema::parse(7, &newer).unwrap();
        let b = WriterSchema::parse(8, &newer).unwrap();
        assert!(std::ptr::eq(a.schema, b.schema));
        let own = WriterSchema::parse(9, catalog::EMBEDDED[0].json).unwrap();
        assert!(std::ptr::eq(own.schema, catalog::prepared(0).schema));
    }

    /// Found by `cargo fuzz run writer_schema` (fuzz/regressions/): apache-avro panicked
    /// while parsing these instead of returning an error.
    #[test]
    fn schemas_that_made_the_avro_parser_panic_are_invalid_writer_schemas() {
        let schema = |found: &'static [u8]| {
            let split = found.iter().position(|b| *b == 0xFF).unwrap();
            std::str::from_utf8(&found[..split]).unwrap()
        };
        for json in [
            schema(include_bytes!(
                "../../fuzz/regressions/writer_schema-crash-bba41f97"
            )),
            schema(include_bytes!(
                "../../fuzz/regressions/writer_schema-crash-4299d6a6"
            )),
            schema(include_bytes!(
                "../../fuzz/regressions/writer_schema-crash-b71b8309"
            )),
            r#"{"type":"fixed","name":"F","size":"x"}"#,
            r#"{"type":"map","values":"string","fields":0}"#,
            r#"{"type":"array","items":"int","order":true}"#,
        ] {
            match WriterSchema::parse(9, json) {
                // Refused before apache-avro could panic: where panics abort (the fuzz
                // build), catching one would be too late.
                Err(CodecError::InvalidWriterSchema { detail, .. }) => assert!(
                    !detail.starts_with("the Avro parser failed"),
                    "{json}: only caught after a panic: {detail}"
                ),
                Err(other) => panic!("{json}: wrong error {other}"),
                Ok(_) => panic!("{json}: accepted"),
            }
        }
    }
}
