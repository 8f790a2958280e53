//! The whole per-record path of the service, in process: decode a framed TdaAnomaly,
//! validate, enrich, assess with the semantic engine, build the command and encode it.
//! This is the CPU cost one record adds on top of the broker round trips.
//!
//! `cargo bench --bench pipeline`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use aura::codec::Codec;
use aura::config::Config;
use aura::generator::Generator;
use aura::runtime::{InputRecord, RecordHandler};
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};
use aura::telemetry::Metrics;
use aura::topology::Topology;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    // The embedded codec never waits, so the future completes on its first poll.
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut future = std::pin::pin!(future);
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the embedded codec went to the network"),
    }
}

fn records(n: usize) -> Vec<InputRecord> {
    let codec = Codec::embedded();
    let mut generator = Generator::new(3, 50, 0.0);
    (0..n)
        .map(|offset| {
            let anomaly = generator.anomaly(1_000_000);
            InputRecord {
                topic: "tda.anomalies".into(),
                partition: 0,
                offset: offset as i64,
                key: Some(anomaly.correlation_id.clone().into_bytes()),
                value: Some(codec.encode("tda.anomalies", &anomaly).unwrap()),
                timestamp_ms: Some(1_000_000),
                headers: vec![],
            }
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    // Sagas off: the anomaly chain and the correlation window, one command per incident.
    let mut config = Config::default();
    config.sagas.enabled = false;
    let metrics = Metrics::new();
    let handler = RecordHandler::new(Codec::embedded(), Topology::new(&config), metrics.clone());
    let engine = Arc::new(Engine::new(
        SemanticConfig::default(),
        PatternLibrary::builtin(),
    ));
    let make = aura::app::incident_tasks(&config, &metrics, Arc::default(), engine, 1).unwrap();
    let mut task = make(0);
    let inputs = records(1024);
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("anomaly_to_encoded_command", |b| {
        b.iter(|| {
            let record = &inputs[i % inputs.len()];
            i += 1;
            let decoded = block_on(handler.decode(record));
            black_box(handler.handle(task.as_mut(), record, decoded, 1_000_000, Instant::now()))
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
