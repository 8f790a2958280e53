//! Avro values in the Confluent wire format (magic byte 0, 4-byte big-endian schema id,
//! Avro binary), with writer schemas from a Schema Registry or from the embedded catalog.
//! Keys are plain UTF-8 strings and do not pass through here.
//!
//! Decoding resolves the record's writer schema against the model type's reader schema,
//! so records written with an older or newer compatible schema are read, not rejected.
//! The hot path does no I/O: reader schemas are parsed once per process, writer schemas
//! are cached by id after their first fetch, and encoding uses the ids obtained when the
//! service registered its output schemas at start-up.
//!
//! - `catalog`: the embedded schemas and the `AvroRecord` trait tying model types to them.
//! - `wire`: the Confluent framing.
//! - `writer`: writer schemas by id, and reading a datum into a model type.
//! - `registry`: the registry HTTP calls and how their failures are classed.
//! - `limits`: writer schemas refused as unsafe to decode with (recursive, deep, huge).
//! - `error`: `CodecError`, classed poison, transient or fatal.

mod catalog;
mod error;
#[cfg(test)]
mod fuzz_seeds;
mod limits;
mod registry;
mod wire;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use catalog::{by_name, AvroRecord, EmbeddedSchema, EMBEDDED};
use error::brief;
pub use error::CodecError;
pub use wire::HEADER_LEN;

use registry::Registry;
use writer::WriterSchema;

/// Upper bound on one allocation while decoding (a string, bytes, or an array's items). A
/// garbage length prefix then costs an error, not hundreds of megabytes. Kafka records
/// are far smaller. The bound is process-wide, set by the first codec built.
const MAX_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// How long the registry's answer for an unusable id is reused. Ids exist before any record
/// framed with them, so an unknown id is almost always garbage, and garbage must not cost
/// a registry call per record; the expiry covers a registry restored behind the
/// producers' backs.
const REJECTED_ID_TTL: Duration = Duration::from_secs(300);
const REJECTED_ID_CAPACITY: u64 = 10_000;

/// Encodes and decodes model records. Cheap to clone; clones share the schema caches.
#[derive(Clone)]
pub struct Codec {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` in embedded mode.
    registry: Option<Registry>,
    /// Topic to the schema written there, in registry mode.
    writes: HashMap<String, WriteTarget>,
    writers: RwLock<HashMap<u32, Arc<WriterSchema>>>,
    /// Ids the registry answered with something unusable (404, not Avro, not valid Avro).
    rejected_ids: moka::sync::Cache<u32, CodecError>,
}

#[derive(Debug, Clone, Copy)]
struct WriteTarget {
    schema_name: &'static str,
    id: u32,
}

impl Codec {
    /// Embedded catalog, no registry: each schema is served under its fixed embedded id
    /// (`AvroRecord::EMBEDDED_ID`) on every topic, with the same wire format.
    pub fn embedded() -> Self {
        let writers = EMBEDDED
            .iter()
            .enumerate()
            .map(|(index, e)| (e.id, Arc::new(WriterSchema::embedded(e.id, index))))
            .collect();
        Self::build(None, HashMap::new(), writers)
    }

    /// A Confluent-compatible registry at `url` (for Apicurio, `.../apis/ccompat/v7`).
    /// Registers each `(topic, schema name)` in `writes` under the subject `<topic>-value`
    /// (TopicNameStrategy); encoding is then allowed on exactly those topics.
    pub async fn with_registry(url: &str, writes: &[(&str, &str)]) -> Result<Self, CodecError> {
        Self::with_registry_access(&crate::security::RegistryAccess::plain(url), writes).await
    }

    /// [`Codec::with_registry`] over HTTPS with a private CA, or with credentials.
    pub async fn with_registry_access(
        access: &crate::security::RegistryAccess,
        writes: &[(&str, &str)],
    ) -> Result<Self, CodecError> {
        let registry = Registry::new(access)?;
        let mut targets = HashMap::new();
        let mut writers = HashMap::new();
        for &(topic, name) in writes {
            let embedded = by_name(name).ok_or_else(|| CodecError::UnknownSchemaName {
                name: name.to_owned(),
            })?;
            let id = registry
                .register(&format!("{topic}-value"), embedded)
                .await?;
            let index = embedded.id as usize - 1;
            writers.insert(id, Arc::new(WriterSchema::embedded(id, index)));
            targets.insert(
                topic.to_owned(),
                WriteTarget {
                    schema_name: embedded.name,
                    id,
                },
            );
        }
        Ok(Self::build(Some(registry), targets, writers))
    }

    fn build(
        registry: Option<Registry>,
        writes: HashMap<String, WriteTarget>,
        writers: HashMap<u32, Arc<WriterSchema>>,
    ) -> Self {
        apache_avro::util::max_allocation_bytes(MAX_ALLOCATION_BYTES);
        // Parse the embedded schemas now, so a broken build fails at start-up.
        catalog::all_prepared();
        Self {
            inner: Arc::new(Inner {
                registry,
                writes,
                writers: RwLock::new(writers),
                rejected_ids: moka::sync::Cache::builder()
                    .max_capacity(REJECTED_ID_CAPACITY)
                    .time_to_live(REJECTED_ID_TTL)
                    .build(),
            }),
        }
    }

    /// Makes `json` the writer schema for `id`, as if a registry served it. For replaying
    /// data framed elsewhere into an embedded codec, and for tests of schema evolution.
    pub fn insert_writer_schema(&self, id: u32, json: &str) -> Result<(), CodecError> {
        let writer = Arc::new(WriterSchema::parse(id, json)?);
        self.writers_mut().insert(id, writer);
        self.inner.rejected_ids.invalidate(&id);
        Ok(())
    }

    /// The schema id `encode` frames `T` with on `topic`.
    pub fn schema_id<T: AvroRecord>(&self, topic: &str) -> Result<u32, CodecError> {
        if self.inner.registry.is_none() {
            return Ok(T::EMBEDDED_ID);
        }
        let target =
            self.inner
                .writes
                .get(topic)
                .ok_or_else(|| CodecError::TopicNotRegistered {
                    topic: topic.to_owned(),
                })?;
        if target.schema_name != T::SCHEMA_NAME {
            return Err(CodecError::WrongSchemaForTopic {
                topic: topic.to_owned(),
                registered: target.schema_name,
                requested: T::SCHEMA_NAME,
            });
        }
        Ok(target.id)
    }

    /// Encodes `value` as a framed record for `topic`.
    pub fn encode<T: AvroRecord>(&self, topic: &str, value: &T) -> Result<Vec<u8>, CodecError> {
        let mut buf = Vec::with_capacity(256);
        self.encode_into(topic, value, &mut buf)?;
        Ok(buf)
    }

    /// Appends the framed record to `buf`, so a caller can reuse one buffer. On error,
    /// `buf` is left as it was.
    pub fn encode_into<T: AvroRecord>(
        &self,
        topic: &str,
        value: &T,
        buf: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let id = self.schema_id::<T>(topic)?;
        let prepared = catalog::prepared(catalog::index_of::<T>());
        let start = buf.len();
        wire::put_header(buf, id);
        apache_avro::write_avro_datum_ref(prepared.schema, prepared.names(), value, buf).map_err(
            |e| {
                buf.truncate(start);
                CodecError::Encode {
                    schema: T::SCHEMA_NAME,
                    detail: brief(e),
                }
            },
        )?;
        Ok(())
    }

    /// Decodes a framed record into `T`. The writer schema is looked up by the record's id
    /// (from memory; from the registry on the first sight of an id) and resolved against
    /// `T`'s schema. Never panics: every malformed input is a poison `CodecError`.
    pub async fn decode<T: AvroRecord>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (id, datum) = wire::split(bytes)?;
        {
            // Decoding under the read lock saves cloning the entry out; readers do not block
            // each other, and inserts (an id seen for the first time) are rare.
            let writers = self.inner.writers.read().unwrap_or_else(|e| e.into_inner());
            if let Some(writer) = writers.get(&id) {
                return writer.read(datum);
            }
        }
        self.fetch_writer(id).await?.read(datum)
    }

    async fn fetch_writer(&self, id: u32) -> Result<Arc<WriterSchema>, CodecError> {
        let Some(registry) = &self.inner.registry else {
            return Err(CodecError::UnknownSchemaId { id });
        };
        if let Some(rejection) = self.inner.rejected_ids.get(&id) {
            return Err(rejection);
        }
        let fetched = match registry.fetch(id).await {
            Ok(json) => WriterSchema::parse(id, &json),
            Err(e) => Err(e),
        };
        match fetched {
            Ok(writer) => Ok(self
                .writers_mut()
                .entry(id)
                .or_insert_with(|| Arc::new(writer))
                .clone()),
            Err(e) => {
                if e.is_poison() {
                    self.inner.rejected_ids.insert(id, e.clone());
                }
                Err(e)
            }
        }
    }

    fn writers_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<u32, Arc<WriterSchema>>> {
        // The map is only ever inserted into, whole entries at a time: a panic elsewhere
        // while holding the lock cannot leave it inconsistent.
        self.inner
            .writers
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TdaAnomaly;

    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn codec_and_decode_future_can_cross_threads() {
        let codec = Codec::embedded();
        assert_send(codec.decode::<TdaAnomaly>(&[]));
        assert_send(codec.clone());
        fn assert_sync<T: Sync>(_: &T) {}
        assert_sync(&codec);
    }

    #[test]
    fn embedded_ids_frame_every_topic_alike() {
        let codec = Codec::embedded();
        assert_eq!(codec.schema_id::<TdaAnomaly>("a").unwrap(), 1);
        assert_eq!(codec.schema_id::<TdaAnomaly>("b").unwrap(), 1);
    }
}
