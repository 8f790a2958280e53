//! The embedded schema catalog: every `schemas/*.avsc`, compiled into the binary, and the
//! one place that ties each model type to its schema and to its embedded schema id.
//!
//! Each schema is parsed once per process. The parsed schemas are the service's reader
//! schemas in every mode, and the writer schemas in embedded mode.

use std::sync::OnceLock;

use apache_avro::schema::{NamesRef, ResolvedSchema};
use apache_avro::Schema;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model;

/// A model type with a schema in `schemas/`.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// Full name of the record, e.g. `aura.v1.TdaAnomaly`.
    const SCHEMA_NAME: &'static str;
    /// Id of the schema in the embedded catalog; also its position there, plus one.
    const EMBEDDED_ID: u32;
}

/// One schema shipped with the binary.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedSchema {
    /// Full name, e.g. `aura.v1.TdaAnomaly`.
    pub name: &'static str,
    /// Id the embedded catalog serves the schema under. Stable: ids are never reused or
    /// renumbered, because framed records on an embedded log carry them.
    pub id: u32,
    /// The `.avsc` text.
    pub json: &'static str,
}

macro_rules! catalog {
    ($($id:literal => $ty:ident),* $(,)?) => {
        /// Every schema in `schemas/`, in embedded-id order.
        pub static EMBEDDED: &[EmbeddedSchema] = &[$(EmbeddedSchema {
            name: concat!("aura.v1.", stringify!($ty)),
            id: $id,
            json: include_str!(concat!("../../schemas/", stringify!($ty), ".avsc")),
        }),*];

        $(impl AvroRecord for model::$ty {
            const SCHEMA_NAME: &'static str = concat!("aura.v1.", stringify!($ty));
            const EMBEDDED_ID: u32 = $id;
        })*
    };
}

// Append only: an id, once shipped, keeps its schema name forever.
catalog! {
    1 => TdaAnomaly,
    2 => TdaContext,
    3 => AgentResult,
    4 => AgentVote,
    5 => AgentRegistration,
    6 => RoutingFeedback,
    7 => FeatureFlag,
    8 => AgentCommand,
    9 => SagaEvent,
    10 => CompensationCommand,
    11 => CorrelationEvent,
    12 => Escalation,
    13 => ConsensusDecision,
    14 => DeadLetter,
}

/// The embedded schema with this full name.
pub fn by_name(name: &str) -> Option<&'static EmbeddedSchema> {
    EMBEDDED.iter().find(|s| s.name == name)
}

/// A parsed embedded schema, ready to write with and to read into.
pub(crate) struct Prepared {
    pub(crate) schema: &'static Schema,
    /// Named types of `schema`, resolved once instead of on every record.
    pub(crate) resolved: ResolvedSchema<'static>,
    /// Parsing Canonical Form: two schemas with the same one encode identically.
    pub(crate) canonical: String,
}

impl Prepared {
    pub(crate) fn names(&self) -> &NamesRef<'static> {
        self.resolved.get_names()
    }
}

/// The prepared schema for `index` (its embedded id minus one).
pub(crate) fn prepared(index: usize) -> &'static Prepared {
    &all_prepared()[index]
}

/// All embedded schemas, parsed on first use, in catalog order.
///
/// # Panics
/// If a shipped schema does not parse: a build defect that `tests/schemas.rs` catches, and
/// that `Codec`'s constructors surface at start-up rather than on the first record.
pub(crate) fn all_prepared() -> &'static [Prepared] {
    static PARSED: OnceLock<Vec<Schema>> = OnceLock::new();
    static PREPARED: OnceLock<Vec<Prepared>> = OnceLock::new();
    PREPARED.get_or_init(|| {
        let parsed = PARSED.get_or_init(|| {
            EMBEDDED
                .iter()
                .map(|e| Schema::parse_str(e.json).unwrap_or_else(|err| invalid(e, err)))
                .collect()
        });
        EMBEDDED
            .iter()
            .zip(parsed)
            .map(|(embedded, schema)| Prepared {
                schema,
                resolved: ResolvedSchema::new(schema).unwrap_or_else(|e| invalid(embedded, e)),
                canonical: schema.canonical_form(),
            })
            .collect()
    })
}

fn invalid<T>(embedded: &EmbeddedSchema, err: apache_avro::Error) -> T {
    panic!("embedded schema {} is invalid: {err}", embedded.name)
}

/// Catalog position of `T`'s schema.
pub(crate) fn index_of<T: AvroRecord>() -> usize {
    T::EMBEDDED_ID as usize - 1
}
