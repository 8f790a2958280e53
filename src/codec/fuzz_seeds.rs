//! The seed corpus of the fuzz targets under `fuzz/` (see `scripts/fuzz`): real records, so
//! the fuzzers start from inputs that reach deep into the decoders. This test checks that
//! every shipped seed still decodes (a schema change that breaks them shows here) and, with
//! `AURA_WRITE_FUZZ_SEEDS=1`, writes them anew.

use std::path::{Path, PathBuf};

use crate::codec::Codec;
use crate::generator::{damage_bytes, Generator, BAD_KINDS};
use crate::model::TdaAnomaly;
use crate::saga::{SagaConfig, SagaEngine, SagaStart, SagaStore, Workflows};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Framed records: valid anomalies, then one of each class of bad bytes.
fn framed_seeds() -> Vec<Vec<u8>> {
    let codec = Codec::embedded();
    let mut generator = Generator::new(11, 5, 0.0);
    let mut seeds: Vec<Vec<u8>> = (0..4)
        .map(|_| codec.encode("t", &generator.anomaly(1_000)).unwrap())
        .collect();
    for kind in BAD_KINDS {
        let mut key = b"k".to_vec();
        let mut value = codec.encode("t", &generator.anomaly(1_000)).unwrap();
        damage_bytes(*kind, &mut key, &mut value);
        seeds.push(value);
    }
    seeds
}

/// Writer schema text, 0xFF, a datum: the anomaly schema with a real datum, and a
/// recursive schema with a nested datum.
fn writer_schema_seeds() -> Vec<Vec<u8>> {
    let codec = Codec::embedded();
    let anomaly = codec
        .encode("t", &Generator::new(3, 1, 0.0).anomaly(1_000))
        .unwrap();
    let schema = crate::codec::by_name("aura.v1.TdaAnomaly").unwrap().json;
    let mut real = schema.as_bytes().to_vec();
    real.push(0xFF);
    real.extend_from_slice(&anomaly[5..]);
    let list =
        r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#;
    let mut nested = list.as_bytes().to_vec();
    nested.push(0xFF);
    nested.extend(std::iter::repeat_n(2u8, 64));
    nested.push(0);
    vec![real, nested]
}

/// Saga changelog records of the shipped workflows, one per line.
fn changelog_seeds() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/workflows");
    let workflows = Workflows::load_dir(dir).unwrap();
    let names: Vec<String> = workflows.names().map(str::to_string).collect();
    let engine = SagaEngine::new(std::sync::Arc::new(workflows), SagaConfig::default());
    let mut store = SagaStore::new();
    for (i, workflow) in names.iter().enumerate() {
        let req = SagaStart {
            saga_id: format!("c{i}@1"),
            correlation_id: format!("c{i}"),
            workflow: workflow.clone(),
            anomaly_ids: vec![format!("a{i}")],
            pattern_id: None,
            layer: crate::model::Layer::Operational,
            coordination: crate::model::Coordination::Pipeline,
            urgency: 0.5,
            complexity: 0.5,
            explanation: "seed".into(),
            attributes: Default::default(),
            agent_overrides: Default::default(),
        };
        store.start_or_join(&engine, req, 1_000).unwrap();
    }
    let lines: Vec<Vec<u8>> = store
        .iter()
        .map(|s| store.record(&s.saga_id).unwrap().to_vec())
        .collect();
    vec![lines.join(&b'\n')]
}

#[test]
fn the_fuzz_seed_corpus_is_current() {
    let sets = [
        ("framed_decoder", framed_seeds()),
        ("writer_schema", writer_schema_seeds()),
        ("changelog_restore", changelog_seeds()),
    ];
    if std::env::var_os("AURA_WRITE_FUZZ_SEEDS").is_some() {
        for (target, seeds) in &sets {
            std::fs::create_dir_all(corpus(target)).unwrap();
            for (i, seed) in seeds.iter().enumerate() {
                std::fs::write(corpus(target).join(format!("seed-{i:02}")), seed).unwrap();
            }
        }
    }
    let codec = Codec::embedded();
    for i in 0..4 {
        let shipped = std::fs::read(corpus("framed_decoder").join(format!("seed-{i:02}"))).unwrap();
        futures::executor::block_on(codec.decode::<TdaAnomaly>(&shipped)).unwrap();
    }
    // Ids in the seeds are random, so the shipped files are not compared byte for byte.
    for (target, seeds) in &sets {
        for (i, seed) in seeds.iter().enumerate() {
            let shipped = corpus(target).join(format!("seed-{i:02}"));
            assert!(
                shipped.exists() && !seed.is_empty(),
                "{} is missing: run with AURA_WRITE_FUZZ_SEEDS=1",
                shipped.display()
            );
        }
    }
    let mut store = SagaStore::new();
    for line in changelog_seeds()[0].split(|b| *b == b'\n') {
        store.insert_record(line).unwrap();
    }
    assert!(store.len() >= 5);
}
