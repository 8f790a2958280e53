//! The measuring client: a producer that publishes anomalies at a fixed rate and a
//! read_committed consumer that reads the outputs back, both in the bench process, outside the
//! system under test. The same client measures every system.
//!
//! A measurement is a sequence of phases on one running system (a discarded warm-up, then one
//! phase per rate). Latency is from just before an anomaly is handed to the producer to its
//! output being readable. When the system stamps its outputs when it produces them (every
//! system but Kafka Streams, which copies the input's timestamp), each latency also splits at
//! that stamp: before it, the anomaly's produce, the system's fetch, queues and processing;
//! after it, the wait for the commit, the commit and the bench's fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::codec::Codec;
use crate::config::KafkaConfig;
use crate::generator::Generator;
use crate::model::{AgentCommand, TdaAnomaly};

use super::child::SystemProcess;
use super::service_metrics::ServiceFigures;
use super::system::System;

/// Width of a latency-over-time bucket: each point is the worst latency of the records sent
/// in it, so a stall shows as a spike.
const TIMELINE_BUCKET_MS: f64 = 100.0;

/// An anomaly on its way.
struct Sent {
    phase: usize,
    at: Instant,
    wall_ms: i64,
}

/// What the reader gathered for one phase.
struct PhaseData {
    started: Instant,
    received: u64,
    last_received: Option<Instant>,
    latency: Histogram<u64>,
    before_output: Histogram<u64>,
    after_output: Histogram<u64>,
    /// (seconds since the phase started, at sending; latency in ms)
    samples: Vec<(f64, f64)>,
}

/// One phase's figures.
#[derive(Serialize, Clone)]
pub struct PhaseResult {
    pub rate: f64,
    pub seconds: f64,
    pub sent: u64,
    pub received: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub throughput_per_second: f64,
    /// Sent to the output's own timestamp (produce, fetch, queues, processing): p50, p99, max.
    pub before_output_ms: Option<[f64; 3]>,
    /// The output's timestamp to readable (commit wait, commit, fetch): p50, p99, max.
    pub after_output_ms: Option<[f64; 3]>,
    /// The service's own metrics over the phase (`aura run` only).
    pub service: Option<ServiceFigures>,
    /// The system's resident memory at the phase's end (the JVM's whole heap for Kafka Streams).
    pub resident_mib: Option<f64>,
    /// [seconds since the phase started, worst latency in ms] per 100 ms of sending.
    pub timeline: Vec<[f64; 2]>,
}

impl PhaseResult {
    /// Every record arrived, and p99 stayed within `limit_ms`.
    pub fn sustained(&self, limit_ms: f64) -> bool {
        self.received == self.sent && self.p99_ms <= limit_ms
    }
}

pub struct Probe {
    system: System,
    topic: String,
    codec: Codec,
    producer: FutureProducer,
    generator: Generator,
    sent: Arc<Mutex<HashMap<String, Sent>>>,
    phases: Arc<Mutex<Vec<PhaseData>>>,
    stop: watch::Sender<bool>,
    reader: JoinHandle<anyhow::Result<()>>,
}

impl Probe {
    /// Starts reading `output` and gets ready to publish to `input`.
    pub fn new(
        system: System,
        kafka: &KafkaConfig,
        input: &str,
        output: &str,
        codec: Codec,
    ) -> anyhow::Result<Self> {
        // Every client takes the security settings, as the systems under test do.
        let producer: FutureProducer = crate::security::client_config(kafka)
            .set("linger.ms", "0")
            .set("socket.nagle.disable", "true")
            .set("partitioner", "murmur2_random")
            .create()
            .context("cannot create the bench's producer")?;
        let consumer: StreamConsumer = crate::security::client_config(kafka)
            .set("group.id", format!("{output}-reader"))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "5")
            .set("socket.nagle.disable", "true")
            .create()
            .context("cannot create the bench's consumer")?;
        consumer.subscribe(&[output])?;
        let sent: Arc<Mutex<HashMap<String, Sent>>> = Arc::default();
        let phases: Arc<Mutex<Vec<PhaseData>>> = Arc::default();
        let (stop, stopped) = watch::channel(false);
        let reader = tokio::spawn(read_outputs(
            consumer,
            codec.clone(),
            system,
            sent.clone(),
            phases.clone(),
            stopped,
        ));
        Ok(Self {
            system,
            topic: input.to_string(),
            codec,
            producer,
            generator: Generator::new(7, system.sources(), 0.0),
            sent,
            phases,
            stop,
            reader,
        })
    }

    /// Publishes at `rate` for `seconds`, then waits until every output of the phase has
    /// arrived (at most `drain` longer). Fails only when the system exits.
    pub async fn phase(
        &mut self,
        rate: f64,
        seconds: f64,
        drain: Duration,
        process: &mut SystemProcess,
    ) -> anyhow::Result<PhaseResult> {
        let before = match process.http() {
            Some(http) => Some(ServiceFigures::scrape(http).await),
            None => None,
        };
        let index = {
            let mut phases = self.phases.lock().expect("phases lock");
            phases.push(PhaseData {
                started: Instant::now(),
                received: 0,
                last_received: None,
                latency: crate::telemetry::latency_histogram(),
                before_output: crate::telemetry::latency_histogram(),
                after_output: crate::telemetry::latency_histogram(),
                samples: Vec::new(),
            });
            phases.len() - 1
        };
        let started = self.phases.lock().expect("phases lock")[index].started;
        let events = (rate * seconds).round() as u64;
        for n in 0..events {
            tokio::time::sleep_until((started + Duration::from_secs_f64(n as f64 / rate)).into())
                .await;
            let anomaly = self.generator.anomaly(crate::clock::now_ms());
            let value = self.codec.encode(&self.topic, &anomaly)?;
            self.sent.lock().expect("sent lock").insert(
                anomaly.anomaly_id.clone(),
                Sent {
                    phase: index,
                    at: Instant::now(),
                    wall_ms: crate::clock::now_ms(),
                },
            );
            let record = FutureRecord::to(&self.topic)
                .key(&anomaly.correlation_id)
                .payload(&value);
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .context("produce failed")?;
            // Not awaited: the reader sees every output, and the sender must keep its rate.
            drop(delivery);
            if n % 1000 == 0 {
                process.check_alive()?;
            }
        }
        self.producer
            .flush(Duration::from_secs(10))
            .context("the bench's producer could not flush")?;
        let sent_done = Instant::now();
        let deadline = sent_done + drain;
        while self.phases.lock().expect("phases lock")[index].received < events
            && Instant::now() < deadline
        {
            process.check_alive()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let service = match (process.http(), before) {
            (Some(http), Some(before)) => Some(
                ServiceFigures::scrape(http)
                    .await
                    .since(&before, sent_done.duration_since(started)),
            ),
            _ => None,
        };
        // The whole /metrics text after the phase, for a closer look (as the old bench did).
        if let (Ok(path), Some(http)) = (std::env::var("AURA_BENCH_METRICS_OUT"), process.http()) {
            if let Some((_, text)) = super::probe::http_get(http, "/metrics").await {
                std::fs::write(&path, text).with_context(|| format!("cannot write {path}"))?;
            }
        }
        let resident = process
            .pid()
            .and_then(|pid| super::probe::resident_bytes(pid).ok())
            .map(|b| b as f64 / 1_048_576.0);
        let phases = self.phases.lock().expect("phases lock");
        let mut result = summarize(&phases[index], rate, seconds, events, self.system, service);
        result.resident_mib = resident;
        Ok(result)
    }

    /// Stops the reader.
    pub async fn close(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.reader.await.context("the bench's reader panicked")?
    }
}

fn summarize(
    data: &PhaseData,
    rate: f64,
    seconds: f64,
    sent: u64,
    system: System,
    service: Option<ServiceFigures>,
) -> PhaseResult {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let split = |h: &Histogram<u64>| {
        (system.stamps_outputs() && !h.is_empty())
            .then(|| [ms(h, 0.5), ms(h, 0.99), h.max() as f64 / 1000.0])
    };
    let elapsed = data
        .last_received
        .map_or(0.0, |l| l.duration_since(data.started).as_secs_f64());
    PhaseResult {
        rate,
        seconds,
        sent,
        received: data.received,
        p50_ms: ms(&data.latency, 0.5),
        p90_ms: ms(&data.latency, 0.9),
        p99_ms: ms(&data.latency, 0.99),
        p999_ms: ms(&data.latency, 0.999),
        max_ms: data.latency.max() as f64 / 1000.0,
        throughput_per_second: if elapsed > 0.0 {
            data.received as f64 / elapsed
        } else {
            0.0
        },
        before_output_ms: split(&data.before_output),
        after_output_ms: split(&data.after_output),
        service,
        resident_mib: None,
        timeline: timeline(&data.samples),
    }
}

/// The worst latency per bucket of sending time.
fn timeline(samples: &[(f64, f64)]) -> Vec<[f64; 2]> {
    let mut worst: Vec<f64> = Vec::new();
    for &(at, latency) in samples {
        let bucket = (at * 1000.0 / TIMELINE_BUCKET_MS) as usize;
        if worst.len() <= bucket {
            worst.resize(bucket + 1, f64::NAN);
        }
        worst[bucket] = if worst[bucket].is_nan() {
            latency
        } else {
            worst[bucket].max(latency)
        };
    }
    worst
        .into_iter()
        .enumerate()
        .filter(|(_, w)| !w.is_nan())
        .map(|(i, w)| [i as f64 * TIMELINE_BUCKET_MS / 1000.0, w])
        .collect()
}

/// Reads outputs until told to stop, attributing each to the phase its anomaly was sent in.
async fn read_outputs(
    consumer: StreamConsumer,
    codec: Codec,
    system: System,
    sent: Arc<Mutex<HashMap<String, Sent>>>,
    phases: Arc<Mutex<Vec<PhaseData>>>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        let message = tokio::select! {
            _ = stop.changed() => return Ok(()),
            m = consumer.recv() => m.context("the bench's consumer failed")?,
        };
        let received = Instant::now();
        let received_ms = crate::clock::now_ms();
        let payload = message.payload().unwrap_or_default();
        let anomaly_id = if system.copies() {
            Some(codec.decode::<TdaAnomaly>(payload).await?.anomaly_id)
        } else {
            codec
                .decode::<AgentCommand>(payload)
                .await?
                .anomaly_ids
                .into_iter()
                .next()
        };
        let Some(origin) = anomaly_id.and_then(|id| sent.lock().expect("sent lock").remove(&id))
        else {
            continue; // a later command of the same saga, or a duplicate
        };
        let mut phases = phases.lock().expect("phases lock");
        let phase = &mut phases[origin.phase];
        let latency = received.duration_since(origin.at);
        phase.received += 1;
        phase.last_received = Some(received);
        phase.latency.saturating_record(latency.as_micros() as u64);
        phase.samples.push((
            origin.at.duration_since(phase.started).as_secs_f64(),
            latency.as_secs_f64() * 1000.0,
        ));
        if let Some(stamp) = message.timestamp().to_millis() {
            let before = (stamp - origin.wall_ms).max(0) as u64;
            let after = (received_ms - stamp).max(0) as u64;
            phase.before_output.saturating_record(before * 1000);
            phase.after_output.saturating_record(after * 1000);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_keeps_the_worst_latency_of_each_bucket() {
        let samples = [(0.01, 3.0), (0.05, 9.0), (0.25, 4.0), (0.26, 2.0)];
        assert_eq!(timeline(&samples), vec![[0.0, 9.0], [0.2, 4.0]]);
    }
}
