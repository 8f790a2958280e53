//! Codec cost per record: the service's path (schema-aware serde, cached writer schemas)
//! against the `Value`-based path that schema_registry_converter's AvroEncoder/AvroDecoder
//! take (`to_value` + `to_avro_datum`, `from_avro_datum` + `from_value`), and records
//! written with other versions of the schema (direct when fields were only added, Avro
//! resolution otherwise).
//!
//! `cargo bench --bench codec`

#[path = "../tests/support/samples.rs"]
mod samples;

use std::hint::black_box;

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use aura::codec::{AvroRecord, Codec, EMBEDDED};
use aura::model::{AgentCommand, TdaAnomaly};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::de::DeserializeOwned;

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    // Every id is cached, so the future completes on its first poll.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("decode went to the network"),
    }
}

fn bench_type<T: AvroRecord + Clone>(c: &mut Criterion, label: &str, value: T) {
    let codec = Codec::embedded();
    let schema = Schema::parse_str(EMBEDDED[T::EMBEDDED_ID as usize - 1].json).unwrap();
    let framed = codec.encode("t", &value).unwrap();
    let mut group = c.benchmark_group(label);
    group.throughput(Throughput::Elements(1));

    group.bench_function("encode", |b| {
        b.iter(|| codec.encode("t", black_box(&value)).unwrap())
    });
    let mut buf = Vec::with_capacity(1024);
    group.bench_function("encode_into (reused buffer)", |b| {
        b.iter(|| {
            buf.clear();
            codec.encode_into("t", black_box(&value), &mut buf).unwrap();
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| block_on(codec.decode::<T>(black_box(&framed))).unwrap())
    });

    group.bench_function("encode via Value (converter's way)", |b| {
        let writer = GenericDatumWriter::builder(&schema).build().unwrap();
        b.iter(|| {
            let value = apache_avro::to_value(black_box(&value))
                .unwrap()
                .resolve(&schema)
                .unwrap();
            writer.write_value_to_vec(value).unwrap()
        })
    });
    group.bench_function("decode via Value (converter's way)", |b| {
        b.iter(|| value_decode::<T>(&schema, black_box(&framed[5..])))
    });
    group.finish();
}

fn value_decode<T: DeserializeOwned>(schema: &Schema, mut datum: &[u8]) -> T {
    let reader = GenericDatumReader::builder(schema).build().unwrap();
    let value: Value = reader.read_value(&mut datum).unwrap();
    apache_avro::from_value(&value).unwrap()
}

/// TdaAnomaly framed with `id` under `schema`: the sample with `region` added (when the
/// schema has it) and `tags` removed (when it lacks it).
fn framed_anomaly(id: u32, schema: &Schema) -> Vec<u8> {
    let Value::Record(mut fields) = apache_avro::to_value(samples::anomaly()).unwrap() else {
        unreachable!()
    };
    let Schema::Record(record) = schema else {
        unreachable!()
    };
    fields.retain(|(name, _)| record.lookup.contains_key(name));
    if record.lookup.contains_key("region") {
        fields.push((
            "region".into(),
            Value::Union(1, Box::new(Value::String("eu".into()))),
        ));
    }
    let value = Value::Record(fields).resolve(schema).unwrap();
    let mut framed = vec![0];
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend(
        GenericDatumWriter::builder(schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap(),
    );
    framed
}

fn anomaly_schema_with(edit: impl FnOnce(&mut Vec<serde_json::Value>)) -> String {
    let mut json: serde_json::Value = serde_json::from_str(EMBEDDED[0].json).unwrap();
    edit(json["fields"].as_array_mut().unwrap());
    json.to_string()
}

fn anomaly_from_other_writer_schemas(c: &mut Criterion) {
    let newer = anomaly_schema_with(|fields| {
        fields.push(serde_json::json!(
            {"name": "region", "type": ["null", "string"], "default": null, "doc": "Region."}
        ))
    });
    let older = anomaly_schema_with(|fields| fields.retain(|f| f["name"] != "tags"));
    let codec = Codec::embedded();
    codec.insert_writer_schema(1001, &newer).unwrap();
    codec.insert_writer_schema(1000, &older).unwrap();
    let from_newer = framed_anomaly(1001, &Schema::parse_str(&newer).unwrap());
    let from_older = framed_anomaly(1000, &Schema::parse_str(&older).unwrap());

    let mut group = c.benchmark_group("TdaAnomaly");
    group.throughput(Throughput::Elements(1));
    group.bench_function(
        "decode from a newer writer schema (added field: direct)",
        |b| b.iter(|| block_on(codec.decode::<TdaAnomaly>(black_box(&from_newer))).unwrap()),
    );
    group.bench_function(
        "decode from an older writer schema (missing field: resolution)",
        |b| b.iter(|| block_on(codec.decode::<TdaAnomaly>(black_box(&from_older))).unwrap()),
    );
    group.finish();
}

fn codec(c: &mut Criterion) {
    bench_type::<TdaAnomaly>(c, "TdaAnomaly", samples::anomaly());
    bench_type::<AgentCommand>(c, "AgentCommand", samples::command());
    anomaly_from_other_writer_schemas(c);
}

criterion_group!(benches, codec);
criterion_main!(benches);
