//! `aura produce`: publish synthetic TDA anomalies to Kafka.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::codec::Codec;
use crate::generator::{damage_bytes, Generator, Synthetic};
use crate::semantic::dataset::write_line;
use crate::semantic::LabelledAnomaly;

mod transactional;
use transactional::TransactionalSink;

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
    /// How long a record may wait for the broker before it counts as not delivered
    /// (librdkafka's message.timeout.ms). A broker restart shorter than this loses nothing;
    /// what is still undelivered then is counted, and the command ends with an error that
    /// says how many. The producer is idempotent, which is not exactly-once: across a broker
    /// restart a record can be written twice. Use --transactional-id for exactly-once.
    #[arg(long, default_value_t = 120_000)]
    delivery_timeout_ms: u64,
    /// Publish in Kafka transactions with this transactional.id, one every
    /// --commit-interval-ms: read_committed consumers (Aura is one) see each record exactly
    /// once, even across a broker restart. A transaction that fails is aborted and its records
    /// sent again. Records become visible at their commit, so this adds up to the interval to
    /// their latency. If the command dies mid-transaction, read_committed consumers of the
    /// topic wait until the transaction times out (--delivery-timeout-ms) or until a new
    /// `aura produce` with the same ID fences it.
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
    /// With --transactional-id: how long each transaction stays open.
    #[arg(long, default_value_t = 100, requires = "transactional_id")]
    commit_interval_ms: u64,
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
    let mut client = crate::security::client_config(&config.kafka);
    client
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", args.delivery_timeout_ms.to_string());
    if let Some(id) = &args.transactional_id {
        // librdkafka wants message.timeout.ms <= transaction.timeout.ms, and the broker
        // refuses more than its transaction.max.timeout.ms (15 minutes by default).
        let timeout = args.delivery_timeout_ms.clamp(1_000, 900_000).to_string();
        client
            .set("transactional.id", id)
            .set("transaction.timeout.ms", &timeout)
            .set("message.timeout.ms", &timeout);
    }
    let producer: FutureProducer = client
        .create()
        .context("cannot create the Kafka producer; check --bootstrap-servers")?;
    let mut transactions = match &args.transactional_id {
        Some(_) => Some(
            TransactionalSink::open(
                producer.clone(),
                &args.topic,
                Duration::from_millis(args.commit_interval_ms),
                Duration::from_millis(args.delivery_timeout_ms),
            )
            .await?,
        ),
        None => None,
    };
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
    let mut outcome = Deliveries::default();
    let mut pending = std::collections::VecDeque::with_capacity(1024);
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
        let (key, value) = encode(&codec, &args.topic, record)?;
        if let Some(sink) = transactions.as_mut() {
            sink.send(key, value).await?;
            bar.inc(1);
            continue;
        }
        loop {
            let record = FutureRecord::to(&args.topic).key(&key).payload(&value);
            match producer.send_result(record) {
                Ok(delivery) => break pending.push_back(delivery),
                // The local queue is full (the broker is away or slow): wait for the oldest.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    match pending.pop_front() {
                        Some(oldest) => outcome.note(oldest.await),
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => {
                    outcome.failed(error.to_string());
                    break;
                }
            }
        }
        // Settle what is done without waiting, so memory stays bounded on long runs.
        while pending.len() > 1024 {
            let oldest = pending.pop_front().expect("not empty");
            outcome.note(oldest.await);
        }
        bar.inc(1);
    }
    for delivery in pending {
        outcome.note(delivery.await);
    }
    if let Some(sink) = transactions.as_mut() {
        sink.finish().await?;
        outcome.delivered = sink.committed;
        if sink.aborted > 0 {
            eprintln!(
                "{} transactions were aborted and their records sent again",
                sink.aborted
            );
        }
    }
    // Every delivery was awaited: there is nothing left to flush but librdkafka's own requests.
    let _ = producer.flush(Duration::from_secs(10));
    if let Some(mut out) = dataset {
        out.flush().context("cannot write the dataset")?;
    }
    bar.finish();
    let elapsed = started.elapsed();
    if outcome.undelivered() == 0 {
        eprintln!(
            "published {} records to {} in {elapsed:.2?}",
            args.events, args.topic
        );
        return Ok(());
    }
    anyhow::bail!(
        "published {} of {} records to {} in {elapsed:.2?}; {} were not delivered within \
         --delivery-timeout-ms {} ({}); is the broker up? Run again to publish more",
        outcome.delivered,
        args.events,
        args.topic,
        outcome.undelivered(),
        args.delivery_timeout_ms,
        outcome.reasons()
    )
}

/// What became of the records handed to the producer.
#[derive(Default)]
struct Deliveries {
    delivered: u64,
    /// Undelivered records by error.
    failures: std::collections::BTreeMap<String, u64>,
}

impl Deliveries {
    fn note(&mut self, delivery: Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>) {
        match delivery {
            Ok(Ok(_)) => self.delivered += 1,
            Ok(Err((error, _))) => self.failed(error.to_string()),
            Err(_) => self.failed("the producer was dropped".into()),
        }
    }

    fn failed(&mut self, error: String) {
        *self.failures.entry(error).or_default() += 1;
    }

    fn undelivered(&self) -> u64 {
        self.failures.values().sum()
    }

    fn reasons(&self) -> String {
        let reasons: Vec<String> = self
            .failures
            .iter()
            .map(|(e, n)| format!("{n}: {e}"))
            .collect();
        reasons.join("; ")
    }
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
