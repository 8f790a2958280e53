//! Any bytes, framed or not, decoded as every record type the service reads, with the
//! shipped (embedded) schemas: a malformed record is an error, never a panic or a hang. An
//! anomaly that decodes then takes the whole per-record path (validate, enrich, score, route,
//! encode) as a partition task runs it: any record ends as outputs or one dead letter.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use aura::codec::Codec;
use aura::config::Config;
use aura::model::{AgentCommand, AgentResult, AgentVote, TdaAnomaly, TdaContext};
use aura::processor::Processor;
use aura::runtime::{InputRecord, RecordHandler};
use aura::topology::Topology;
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};
use aura::telemetry::Metrics;
use libfuzzer_sys::fuzz_target;

struct Path {
    codec: Codec,
    handler: RecordHandler,
    /// The anomaly topic of the default configuration.
    topic: String,
    /// The service's own incident tasks (route, correlate, sagas), as `aura run` builds them.
    make: Box<dyn Fn(i32) -> Box<dyn Processor> + Send + Sync>,
}

fn path() -> &'static Path {
    static PATH: OnceLock<Path> = OnceLock::new();
    PATH.get_or_init(|| {
        let codec = Codec::embedded();
        let config = Config::default();
        let metrics = Metrics::new();
        let engine = Arc::new(Engine::new(SemanticConfig::default(), PatternLibrary::builtin()));
        Path {
            handler: RecordHandler::new(codec.clone(), Topology::new(&config), metrics.clone()),
            codec,
            topic: config.topics.anomalies.clone(),
            make: aura::app::incident_tasks(&config, &metrics, Arc::default(), engine, 1)
                .expect("the default configuration builds its tasks"),
        }
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    // The embedded codec never waits: its futures are ready at once.
    futures::executor::block_on(f)
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    let _ = block_on(p.codec.decode::<AgentResult>(data));
    let _ = block_on(p.codec.decode::<AgentVote>(data));
    let _ = block_on(p.codec.decode::<AgentCommand>(data));
    let _ = block_on(p.codec.decode::<TdaContext>(data));
    let _ = block_on(p.codec.decode::<TdaAnomaly>(data));
    // A well-framed TdaAnomaly header in front of the bytes, so the Avro reader is reached
    // on every input, not only on those that happen to start with a valid header.
    let mut framed = vec![0, 0, 0, 0, 1];
    framed.extend_from_slice(data);
    for value in [data.to_vec(), framed] {
        let record = InputRecord {
            topic: p.topic.clone(),
            partition: 0,
            offset: 0,
            key: Some(b"corr-1".to_vec()),
            value: Some(value),
            timestamp_ms: Some(1_000_000),
            headers: vec![],
        };
        let decoded = block_on(p.handler.decode(&record));
        let mut task = (p.make)(0);
        let outputs = p.handler.handle(task.as_mut(), &record, decoded, 1_000_000, Instant::now());
        assert!(!outputs.is_empty(), "every record ends as outputs or a dead letter");
    }
});
