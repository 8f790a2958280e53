//! `aura produce`: publish synthetic TDA anomalies to Kafka.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::codec::Codec;
use crate::generator::{damage_bytes, Generator, Synthetic};
use crate::semantic::dataset::write_line;
use crate::semantic::LabelledAnomaly;

/// Publish synthetic, realistic TDA anomalies (Avro, Confluent wire format).
///
/// Each anomaly is keyed by its correlation key and registered under <topic>-value.
/// --bad-ratio mixes in malformed records of every dead-letter class (no magic byte,
/// unknown schema id, truncated Avro, missing ids, bad scores, death < birth, oversized
/// diagrams, future timestamps, empty keys). Example:
///
///   aura produce --bootstrap-servers localhost:9092 --schema-registry-url http://localhost:8081 --events 10000 --rate 2000
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct ProduceArgs {
    #[command(flatten)]
    connection: crate::security::ConnectionArgs,
    #[arg(long, default_value = "tda.anomalies")]
    topic: String,
    /// How many records to publish.
    #[arg(long, default_value_t = 1000)]
    events: u64,
    /// Records per second; 0 publishes as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Share of malformed records, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    bad_ratio: f64,
    /// Distinct sources (correlation keys).
    #[arg(long, default_value_t = 50)]
    sources: usize,
    /// Seed of the generator; the same seed gives the same anomalies.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which labelled archetypes to draw from: `mixed` (all), `drift` (memory-leak changes
    /// shape midway), or one pattern name such as `memory-leak` or `ddos`.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// Noise of the archetypes' diagrams, in [0, 1].
    #[arg(long, default_value_t = 0.3)]
    noise: f64,
    /// Also write every valid anomaly with its label as JSON lines, for `aura patterns fit`
    /// and `aura eval`.
    #[arg(long)]
    dataset_out: Option<PathBuf>,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.bad_ratio),
        "--bad-ratio must be in [0, 1], got {}",
        args.bad_ratio
    );
    let config = args.connection.config()?;
    let codec = match config.schema_registry.access() {
        Some(access) => {
            Codec::with_registry_access(&access, &[(args.topic.as_str(), "aura.v1.TdaAnomaly")])
                .await
                .with_context(|| {
                    format!(
                        "cannot register TdaAnomaly at {}; is the registry up?",
                        access.url
                    )
                })?
        }
        None => Codec::embedded(),
    };
    let producer: FutureProducer = crate::security::client_config(&config.kafka)
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("partitioner", "murmur2_random")
        .create()
        .context("cannot create the Kafka producer; check --bootstrap-servers")?;
    let bar = ProgressBar::new(args.events).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let mut generator = Generator::for_scenario(
        &args.scenario,
        args.seed,
        args.noise,
        args.sources,
        args.bad_ratio,
    )?;
    let mut dataset = match &args.dataset_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => None,
    };
    let started = Instant::now();
    let mut pending = Vec::with_capacity(1024);
    for n in 0..args.events {
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(n as f64 / args.rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let (record, label) = generator.next_labelled_record(crate::clock::now_ms());
        if let (Some(out), Synthetic::Good(anomaly)) = (dataset.as_mut(), &record) {
            let example = LabelledAnomaly {
                anomaly: anomaly.clone(),
                label,
            };
            write_line(out, &example).context("cannot write the dataset")?;
        }
        let (mut key, mut value) = encode(&codec, &args.topic, record)?;
        let record = FutureRecord::to(&args.topic).key(&key).payload(&value);
        pending.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .context("produce failed")?,
        );
        key.clear();
        value.clear();
        if pending.len() >= 1024 {
            for delivery in pending.drain(..) {
                delivery
                    .await
                    .context("producer dropped")?
                    .map_err(|(e, _)| e)
                    .context("delivery failed")?;
            }
        }
        bar.inc(1);
    }
    for delivery in pending {
        delivery
            .await
            .context("producer dropped")?
            .map_err(|(e, _)| e)
            .context("delivery failed")?;
    }
    producer
        .flush(Duration::from_secs(10))
        .context("flush failed")?;
    if let Some(mut out) = dataset {
        out.flush().context("cannot write the dataset")?;
    }
    bar.finish();
    eprintln!(
        "published {} records to {} in {:.2?}",
        args.events,
        args.topic,
        started.elapsed()
    );
    Ok(())
}

/// Key and value bytes of one synthetic record, damaged as its kind says.
pub fn encode(codec: &Codec, topic: &str, record: Synthetic) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let (anomaly, byte_damage) = match record {
        Synthetic::Good(a) | Synthetic::BadContent(_, a) => (a, None),
        Synthetic::BadBytes(kind, a) => (a, Some(kind)),
    };
    let mut key = anomaly.correlation_id.clone().into_bytes();
    let mut value = codec.encode(topic, &anomaly)?;
    if let Some(kind) = byte_damage {
        damage_bytes(kind, &mut key, &mut value);
    }
    Ok((key, value))
}
