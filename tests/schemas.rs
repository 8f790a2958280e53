//! Contract tests for `schemas/` and the codec built on it:
//! - every shipped schema parses, is documented, and matches the embedded catalog;
//! - every schema stays BACKWARD compatible with each version in `schemas/history/`;
//! - every model type round-trips through the embedded codec;
//! - records written with an older or newer writer schema are resolved, not rejected;
//! - malformed input of any shape is a poison error and never a panic.

#[path = "support/samples.rs"]
mod samples;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};

use apache_avro::schema::ResolvedSchema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use aura::codec::{AvroRecord, Codec, CodecError, EMBEDDED};
use aura::model::*;
use proptest::prelude::*;
use serde_json::Value as Json;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

/// `(record name, file text)` for every `schemas/*.avsc`.
fn schema_files() -> Vec<(String, String)> {
    let mut files: Vec<_> = fs::read_dir(schema_dir())
        .expect("schemas/ is readable")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "avsc"))
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn parse(label: &str, text: &str) -> Schema {
    Schema::parse_str(text).unwrap_or_else(|e| panic!("{label} does not parse: {e}"))
}

#[test]
fn every_schema_parses_alone_and_is_the_record_its_file_names() {
    let files = schema_files();
    assert_eq!(files.len(), 14, "one schema per record in DESIGN.md");
    for (name, text) in &files {
        let schema = parse(name, text);
        // Named types are resolved when the codec prepares a schema, not when it parses one.
        ResolvedSchema::new(&schema)
            .unwrap_or_else(|e| panic!("schemas/{name}.avsc does not resolve: {e}"));
        let full = schema.name().expect("a record").fullname(None);
        assert_eq!(full, format!("aura.v1.{name}"), "schemas/{name}.avsc");
    }
}

#[test]
fn embedded_catalog_is_exactly_the_schema_files() {
    let files: BTreeMap<String, String> = schema_files().into_iter().collect();
    for (position, embedded) in EMBEDDED.iter().enumerate() {
        assert_eq!(
            embedded.id as usize,
            position + 1,
            "{} is out of id order",
            embedded.name
        );
        let short = embedded.name.strip_prefix("aura.v1.").unwrap();
        assert_eq!(
            Some(&embedded.json.to_owned()),
            files.get(short),
            "{}",
            embedded.name
        );
    }
    assert_eq!(
        EMBEDDED.len(),
        files.len(),
        "a schema file is missing from the catalog"
    );
}

/// Walks a schema's JSON and calls `f` on every named type definition.
fn named_types<'a>(json: &'a Json, f: &mut dyn FnMut(&'a Json)) {
    match json {
        Json::Object(obj) => {
            if matches!(
                obj.get("type").and_then(Json::as_str),
                Some("record" | "enum" | "fixed")
            ) {
                f(json);
            }
            for value in obj.values() {
                named_types(value, f);
            }
        }
        Json::Array(items) => items.iter().for_each(|item| named_types(item, f)),
        _ => {}
    }
}

#[test]
fn every_record_enum_and_field_has_a_doc_and_the_aura_namespace() {
    let mut missing = Vec::new();
    for (file, text) in schema_files() {
        let json: Json = serde_json::from_str(&text).unwrap();
        named_types(&json, &mut |named| {
            let name = named["name"].as_str().unwrap_or("?");
            if named["namespace"] != "aura.v1" {
                missing.push(format!("{file}: {name} is not in namespace aura.v1"));
            }
            if !named["doc"].is_string() {
                missing.push(format!("{file}: {name} has no doc"));
            }
            for field in named["fields"].as_array().into_iter().flatten() {
                if !field["doc"].is_string() {
                    missing.push(format!("{file}: {name}.{} has no doc", field["name"]));
                }
            }
        });
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn shared_named_types_are_declared_identically_everywhere() {
    let mut seen: BTreeMap<String, (String, Json)> = BTreeMap::new();
    let mut differing = Vec::new();
    for (file, text) in schema_files() {
        let json: Json = serde_json::from_str(&text).unwrap();
        named_types(&json, &mut |named| {
            let name = named["name"].as_str().unwrap().to_owned();
            match seen.get(&name) {
                Some((first, decl)) if decl != named => {
                    differing.push(format!("{name}: {first} and {file} differ"));
                }
                Some(_) => {}
                None => {
                    seen.insert(name, (file.clone(), named.clone()));
                }
            }
        });
    }
    assert!(differing.is_empty(), "{differing:#?}");
    for shared in [
        "AgentType",
        "Layer",
        "Coordination",
        "PersistencePoint",
        "Severity",
        "TdaAnomaly",
    ] {
        assert!(seen.contains_key(shared), "{shared} is declared nowhere");
    }
}

#[test]
fn every_schema_reads_every_version_in_its_history() {
    let history = schema_dir().join("history");
    let mut problems = Vec::new();
    for (name, text) in schema_files() {
        let reader = parse(&name, &text);
        let dir = history.join(&name);
        let versions: BTreeSet<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("schemas/history/{name}/ is missing ({e}); seed it with v1"))
            .map(|entry| entry.unwrap().path())
            .collect();
        assert!(
            versions.iter().any(|v| v.ends_with("v1.avsc")),
            "schemas/history/{name}/v1.avsc is missing"
        );
        for version in versions {
            let label = version
                .strip_prefix(&history)
                .unwrap()
                .display()
                .to_string();
            let writer = parse(&label, &fs::read_to_string(&version).unwrap());
            match SchemaCompatibility::can_read(&writer, &reader) {
                Ok(Compatibility::Full) => {}
                Ok(partial) => problems.push(format!("{name} reads {label} only {partial:?}")),
                Err(e) => problems.push(format!("{name} cannot read {label}: {e}")),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "not BACKWARD compatible:\n{}",
        problems.join("\n")
    );
}

#[test]
fn compatibility_check_rejects_a_breaking_change() {
    // The history test is only worth something if the checker sees breakage.
    let old = parse("TdaAnomaly", EMBEDDED[0].json);
    let mut json: Json = serde_json::from_str(EMBEDDED[0].json).unwrap();
    json["fields"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "region", "type": "string", "doc": "no default"}));
    let breaking = parse("breaking", &json.to_string());
    assert!(SchemaCompatibility::can_read(&old, &breaking).is_err());
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn round_trip<T: AvroRecord + PartialEq + Debug>(codec: &Codec, value: T) {
    let bytes = codec.encode("any.topic", &value).unwrap();
    assert_eq!(bytes[0], 0, "{}: magic byte", T::SCHEMA_NAME);
    assert_eq!(
        &bytes[1..5],
        &T::EMBEDDED_ID.to_be_bytes(),
        "{}: schema id",
        T::SCHEMA_NAME
    );
    let decoded: T = block_on(codec.decode(&bytes)).unwrap();
    assert_eq!(decoded, value, "{}", T::SCHEMA_NAME);
}

#[test]
fn every_model_type_round_trips_through_the_embedded_codec() {
    let codec = Codec::embedded();
    round_trip(&codec, samples::anomaly());
    round_trip(&codec, samples::context());
    round_trip(&codec, samples::result());
    round_trip(&codec, samples::vote());
    round_trip(&codec, samples::registration());
    round_trip(&codec, samples::feedback());
    round_trip(&codec, samples::flag());
    round_trip(&codec, samples::command());
    round_trip(&codec, samples::saga_event());
    round_trip(&codec, samples::compensation());
    round_trip(&codec, samples::correlation());
    round_trip(&codec, samples::escalation());
    round_trip(&codec, samples::decision());
    round_trip(&codec, samples::dead_letter());
}

#[test]
fn optional_and_empty_fields_round_trip() {
    let codec = Codec::embedded();
    let mut anomaly = samples::anomaly();
    anomaly.signature.clear();
    anomaly.diagram.clear();
    anomaly.attributes.clear();
    round_trip(&codec, anomaly);
    round_trip(
        &codec,
        RoutingFeedback {
            pattern: None,
            agent_type: None,
            layer: None,
            anomaly: None,
            ..samples::feedback()
        },
    );
    round_trip(
        &codec,
        DeadLetter {
            key: None,
            value: Some(Vec::new()),
            ..samples::dead_letter()
        },
    );
    let mut event = samples::saga_event();
    for kind in [
        SagaEventKind::Started,
        SagaEventKind::CompensationFailed,
        SagaEventKind::Failed,
    ] {
        event.kind = kind;
        event.step = None;
        event.retry_at = None;
        round_trip(&codec, event.clone());
    }
}

/// `base` with `edit` applied to its `fields` array.
fn edited_schema(base: &str, edit: impl FnOnce(&mut Vec<Json>)) -> String {
    let mut json: Json = serde_json::from_str(base).unwrap();
    edit(json["fields"].as_array_mut().unwrap());
    json.to_string()
}

/// Frames `value` (already shaped for `schema`) with `id`, as another producer would.
fn framed_with(id: u32, schema: &Schema, value: Value) -> Vec<u8> {
    let value = value.resolve(schema).expect("value fits the writer schema");
    let datum = GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap();
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(&datum);
    bytes
}

fn record_fields(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Record(fields) => fields,
        other => panic!("not a record: {other:?}"),
    }
}

/// TdaAnomaly as a newer producer writes it: a `region` field in the middle (resolution
/// goes by name, not position) and a `weight` in every diagram point.
fn newer_anomaly_schema() -> String {
    edited_schema(EMBEDDED[0].json, |fields| {
        fields.insert(
            3,
            serde_json::json!({"name": "region", "type": ["null", "string"], "default": null,
                               "doc": "Cloud region of the source."}),
        );
        let point = &mut fields[8]["type"]["items"];
        assert_eq!(point["name"], "PersistencePoint");
        point["fields"].as_array_mut().unwrap().push(
            serde_json::json!({"name": "weight", "type": "double", "default": 1.0, "doc": "Weight."}),
        );
    })
}

/// TdaAnomaly as an older producer wrote it: no `signature`, no `attributes`.
fn older_anomaly_schema() -> String {
    edited_schema(EMBEDDED[0].json, |fields| {
        fields.retain(|f| f["name"] != "signature" && f["name"] != "attributes");
    })
}

const OLDER_ID: u32 = 1000;
const NEWER_ID: u32 = 1001;

/// An embedded codec that also knows the older and newer TdaAnomaly writer schemas.
fn evolved_codec() -> Codec {
    let codec = Codec::embedded();
    codec
        .insert_writer_schema(OLDER_ID, &older_anomaly_schema())
        .unwrap();
    codec
        .insert_writer_schema(NEWER_ID, &newer_anomaly_schema())
        .unwrap();
    codec
}

fn newer_anomaly_bytes(anomaly: &TdaAnomaly) -> Vec<u8> {
    let mut fields = record_fields(apache_avro::to_value(anomaly).unwrap());
    for (name, value) in &mut fields {
        if name == "diagram" {
            let Value::Array(points) = value else {
                unreachable!()
            };
            for point in points {
                let Value::Record(point) = point else {
                    unreachable!()
                };
                point.push(("weight".into(), Value::Double(0.5)));
            }
        }
    }
    fields.insert(
        3,
        (
            "region".into(),
            Value::Union(1, Box::new(Value::String("eu-west-1".into()))),
        ),
    );
    framed_with(
        NEWER_ID,
        &parse("newer", &newer_anomaly_schema()),
        Value::Record(fields),
    )
}

fn older_anomaly_bytes(anomaly: &TdaAnomaly) -> Vec<u8> {
    let mut fields = record_fields(apache_avro::to_value(anomaly).unwrap());
    fields.retain(|(name, _)| name != "signature" && name != "attributes");
    framed_with(
        OLDER_ID,
        &parse("older", &older_anomaly_schema()),
        Value::Record(fields),
    )
}

#[test]
fn anomaly_from_a_newer_writer_schema_is_read() {
    let anomaly = samples::anomaly();
    let decoded: TdaAnomaly =
        block_on(evolved_codec().decode(&newer_anomaly_bytes(&anomaly))).unwrap();
    assert_eq!(decoded, anomaly);
}

#[test]
fn anomaly_from_an_older_writer_schema_gets_the_defaults() {
    let mut anomaly = samples::anomaly();
    let decoded: TdaAnomaly =
        block_on(evolved_codec().decode(&older_anomaly_bytes(&anomaly))).unwrap();
    anomaly.signature.clear();
    anomaly.attributes.clear();
    assert_eq!(decoded, anomaly);
}

#[test]
fn truncated_records_from_other_writer_schemas_are_truncation_errors() {
    let codec = evolved_codec();
    for bytes in [
        newer_anomaly_bytes(&samples::anomaly()),
        older_anomaly_bytes(&samples::anomaly()),
    ] {
        for len in 5..bytes.len() {
            let err = block_on(codec.decode::<TdaAnomaly>(&bytes[..len])).unwrap_err();
            assert!(
                matches!(err, CodecError::Truncated { .. }),
                "cut at {len}: {err}"
            );
        }
    }
}

#[test]
fn a_record_of_another_type_is_unresolvable() {
    let codec = Codec::embedded();
    let bytes = codec.encode("tda.context", &samples::context()).unwrap();
    let err = block_on(codec.decode::<TdaAnomaly>(&bytes)).unwrap_err();
    assert!(
        matches!(err, CodecError::Unresolvable { id: 2, .. }),
        "{err}"
    );
    assert!(err.is_poison() && !err.is_transient());
    assert!(
        err.to_string().starts_with(
            "writer schema id 2 (aura.v1.TdaContext) cannot be read as aura.v1.TdaAnomaly"
        ),
        "{err}"
    );
}

#[test]
fn poison_messages_name_the_input() {
    let codec = Codec::embedded();
    let decode = |bytes: &[u8]| block_on(codec.decode::<TdaAnomaly>(bytes)).unwrap_err();

    let err = decode(br#"{"anomaly_id":"a"}"#);
    assert_eq!(
        err.to_string(),
        "record has no Confluent magic byte (first byte 0x7b)"
    );
    assert_eq!(err.class(), "no_magic_byte");

    let err = decode(&[0, 0, 0, 0x10, 0x92, 1, 2]);
    assert_eq!(err.to_string(), "unknown schema id 4242");

    let err = decode(&[0, 0, 0]);
    assert_eq!(
        err.to_string(),
        "record is 3 bytes, shorter than the 5-byte Confluent header"
    );

    let full = codec.encode("t", &samples::anomaly()).unwrap();
    let err = decode(&full[..full.len() - 3]);
    assert_eq!(
        err.to_string(),
        format!(
            "truncated Avro datum: the {} bytes after the header end inside a aura.v1.TdaAnomaly (schema id 1)",
            full.len() - 8
        )
    );

    let mut trailing = full.clone();
    trailing.extend_from_slice(&[1, 2]);
    assert_eq!(
        decode(&trailing).to_string(),
        "2 trailing bytes after the aura.v1.TdaAnomaly datum (schema id 1)"
    );

    for err in [decode(&[]), decode(&[0, 0, 0, 0x10, 0x92])] {
        assert!(err.is_poison() && !err.is_transient(), "{err}");
    }
}

#[test]
fn every_truncation_of_a_valid_record_is_a_truncation_error() {
    let codec = Codec::embedded();
    let encoded = [
        codec.encode("t", &samples::anomaly()).unwrap(),
        codec.encode("t", &samples::command()).unwrap(),
        codec.encode("t", &samples::feedback()).unwrap(),
        codec.encode("t", &samples::dead_letter()).unwrap(),
    ];
    for bytes in &encoded {
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            let errors = [
                block_on(codec.decode::<TdaAnomaly>(prefix)).err(),
                block_on(codec.decode::<AgentCommand>(prefix)).err(),
                block_on(codec.decode::<RoutingFeedback>(prefix)).err(),
                block_on(codec.decode::<DeadLetter>(prefix)).err(),
            ];
            for err in errors {
                let err = err.expect("a strict prefix never decodes");
                assert!(err.is_poison(), "{err}");
            }
        }
        // Read as its own type, a cut inside the datum is reported as truncation.
        let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
        for len in 5..bytes.len() {
            let err = match id {
                1 => block_on(codec.decode::<TdaAnomaly>(&bytes[..len])).unwrap_err(),
                8 => block_on(codec.decode::<AgentCommand>(&bytes[..len])).unwrap_err(),
                6 => block_on(codec.decode::<RoutingFeedback>(&bytes[..len])).unwrap_err(),
                _ => block_on(codec.decode::<DeadLetter>(&bytes[..len])).unwrap_err(),
            };
            assert!(
                matches!(err, CodecError::Truncated { .. }),
                "cut at {len}: {err}"
            );
        }
    }
}

/// Decodes `bytes` as every model type; any outcome but a panic is fine, and an error
/// must be poison (the embedded codec has no registry to be unavailable).
fn decode_as_everything(codec: &Codec, bytes: &[u8]) {
    fn check<T: AvroRecord>(codec: &Codec, bytes: &[u8]) {
        if let Err(err) = block_on(codec.decode::<T>(bytes)) {
            assert!(err.is_poison(), "{err}");
        }
    }
    check::<TdaAnomaly>(codec, bytes);
    check::<TdaContext>(codec, bytes);
    check::<AgentResult>(codec, bytes);
    check::<AgentVote>(codec, bytes);
    check::<AgentRegistration>(codec, bytes);
    check::<RoutingFeedback>(codec, bytes);
    check::<FeatureFlag>(codec, bytes);
    check::<AgentCommand>(codec, bytes);
    check::<SagaEvent>(codec, bytes);
    check::<CompensationCommand>(codec, bytes);
    check::<CorrelationEvent>(codec, bytes);
    check::<Escalation>(codec, bytes);
    check::<ConsensusDecision>(codec, bytes);
    check::<DeadLetter>(codec, bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_as_everything(&Codec::embedded(), &bytes);
    }

    #[test]
    fn random_datums_under_a_known_id_never_panic(
        id in prop::sample::select((1..=15).chain([OLDER_ID, NEWER_ID]).collect::<Vec<u32>>()),
        datum in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.extend_from_slice(&datum);
        decode_as_everything(&evolved_codec(), &bytes);
    }

    #[test]
    fn corrupted_records_never_panic(
        which in 0usize..6,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let codec = evolved_codec();
        let mut bytes = match which {
            0 => codec.encode("t", &samples::anomaly()).unwrap(),
            1 => codec.encode("t", &samples::command()).unwrap(),
            2 => codec.encode("t", &samples::feedback()).unwrap(),
            3 => newer_anomaly_bytes(&samples::anomaly()),
            4 => older_anomaly_bytes(&samples::anomaly()),
            _ => codec.encode("t", &samples::dead_letter()).unwrap(),
        };
        for (at, byte) in flips {
            let at = 5 + at.index(bytes.len() - 5);
            bytes[at] = byte;
        }
        decode_as_everything(&codec, &bytes);
        let len = cut.index(bytes.len());
        decode_as_everything(&codec, &bytes[..len]);
    }
}
