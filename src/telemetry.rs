//! Every metric the service exports, named in one place.
//!
//! Handles are created once and cloned into the tasks that update them; `/metrics` renders
//! the registry in the Prometheus text format.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets from 10 µs to 10 s: our targets live in the low milliseconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Unprefixed metrics every Prometheus exporter has: `process_*` (CPU, memory, file
    /// descriptors, start time) from /proc.
    process: Registry,
    /// Records consumed, by topic.
    pub records_in: IntCounterVec,
    /// Records produced, by topic.
    pub records_out: IntCounterVec,
    /// Records sent to the dead-letter topic, by stage and reason code.
    pub dead_letters: IntCounterVec,
    /// Time from a record's arrival in its partition task to its outputs being handed to the
    /// producer (decode, process, encode).
    pub processing_seconds: Histogram,
    /// Time from the record's Kafka timestamp to its outputs being committed (exactly-once)
    /// or delivered (at-least-once).
    pub end_to_end_seconds: Histogram,
    /// Commits, by outcome (`committed`, `aborted`).
    pub transactions: IntCounterVec,
    /// How long a commit (transactional or offsets-only) takes.
    pub commit_seconds: HistogramVec,
    /// How long each phase of a transactional commit takes: `flush` (waiting for the broker
    /// to acknowledge the outputs), `offsets` (send_offsets_to_transaction) and `end`
    /// (commit_transaction), so a slow commit says where its time went.
    pub commit_phase_seconds: HistogramVec,
    /// Input partitions this instance owns.
    pub partitions_assigned: IntGauge,
    /// Records in each owned input partition that this instance has not consumed yet, by topic
    /// and partition; updated every 5 s from librdkafka's statistics.
    pub consumer_lag: IntGaugeVec,
    /// Consumer group rebalances seen by this instance.
    pub rebalances: IntCounter,
    /// Transient failures retried (registry or broker unavailable), by kind.
    pub transient_retries: IntCounterVec,
    /// How long a task took to restore its stores from their changelogs.
    pub restore_seconds: Histogram,
    /// Changelog records read back into stores.
    pub restored_records: IntCounter,
    /// The sagas of this instance's partitions.
    pub sagas: SagaMetrics,
    /// `aura_rekeyed_total`: anomalies that arrived in a partition other than their correlation
    /// key's and took the re-key hop (docs/KEYS.md); 0 when the TDA producer keys by
    /// correlation id.
    pub rekeyed: IntCounter,
    /// `aura_registry_agents{agent_type, status}`: the live agent registry as this instance
    /// sees it (expired heartbeats and tombstones removed).
    pub registry_agents: IntGaugeVec,
    /// `aura_route_cache_invalidations_total{cause}`: cached routes dropped because the
    /// registry (`registry`, `expiry`) or the flags (`flags`) changed.
    pub route_invalidations: IntCounterVec,
}

/// Saga metrics. The gauges sum every saga task of this instance: each task adds its own
/// share and takes it back when it stops (`processor::saga_gauges`), so they never `set`.
#[derive(Clone)]
pub struct SagaMetrics {
    /// `aura_sagas{state}`: sagas held, by status; finished ones stay until their retention
    /// ends.
    pub by_state: IntGaugeVec,
    /// `aura_sagas_active`: sagas running or compensating.
    pub active: IntGauge,
    /// `aura_saga_timers_pending`: step timeouts, retries and expiries waiting to fire.
    pub timers_pending: IntGauge,
    /// `aura_saga_inputs_total{input, outcome}`: saga triggers, agent results and votes by what
    /// they did: `applied`, or why they were ignored (`duplicate`, `late`, `unknown`,
    /// `rejected`, `not_asked`, `invalid`).
    pub inputs: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("aura".into()), None).expect("valid prefix");
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            let h = Histogram::with_opts(opts).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let commit_seconds = HistogramVec::new(
            HistogramOpts::new("commit_seconds", "Duration of one commit")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["guarantee"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit_seconds.clone()))
            .expect("unique metric");
        let commit_phase_seconds = HistogramVec::new(
            HistogramOpts::new(
                "commit_phase_seconds",
                "Duration of one phase of a transactional commit",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["phase"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(commit_phase_seconds.clone()))
            .expect("unique metric");
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let rebalances = counter("rebalances_total", "Consumer group rebalances");
        let restored_records = counter(
            "restored_records_total",
            "Changelog records restored into stores",
        );
        let by_state = IntGaugeVec::new(
            Opts::new("sagas", "Sagas held in state by status"),
            &["state"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(by_state.clone()))
            .expect("unique metric");
        let consumer_lag = IntGaugeVec::new(
            Opts::new(
                "consumer_lag",
                "Records not yet consumed in each owned input partition",
            ),
            &["topic", "partition"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(consumer_lag.clone()))
            .expect("unique metric");
        let registry_agents = IntGaugeVec::new(
            Opts::new(
                "registry_agents",
                "Agents in the live registry by type and status",
            ),
            &["agent_type", "status"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(registry_agents.clone()))
            .expect("unique metric");
        let sagas = SagaMetrics {
            by_state,
            active: gauge("sagas_active", "Sagas running or compensating"),
            timers_pending: gauge(
                "saga_timers_pending",
                "Saga timers (timeouts, retries, expiries) waiting to fire",
            ),
            inputs: counter_vec(
                "saga_inputs_total",
                "Saga triggers, agent results and votes by outcome",
                &["input", "outcome"],
            ),
        };
        Self {
            records_in: counter_vec("records_in_total", "Records consumed", &["topic"]),
            records_out: counter_vec("records_out_total", "Records produced", &["topic"]),
            dead_letters: counter_vec(
                "dead_letters_total",
                "Records sent to the dead-letter topic",
                &["stage", "reason"],
            ),
            processing_seconds: histogram(
                "processing_seconds",
                "Decode, process and encode time of one record",
            ),
            end_to_end_seconds: histogram(
                "end_to_end_seconds",
                "Input record timestamp to its outputs committed or delivered",
            ),
            transactions: counter_vec("transactions_total", "Commits by outcome", &["outcome"]),
            commit_seconds,
            commit_phase_seconds,
            partitions_assigned: gauge("partitions_assigned", "Input partitions owned"),
            consumer_lag,
            rebalances,
            restore_seconds: histogram(
                "restore_seconds",
                "Time one task took to restore its stores",
            ),
            restored_records,
            transient_retries: counter_vec(
                "transient_retries_total",
                "Transient failures retried with backoff",
                &["kind"],
            ),
            sagas,
            rekeyed: counter(
                "rekeyed_total",
                "Anomalies re-keyed to their correlation key's partition",
            ),
            registry_agents,
            route_invalidations: counter_vec(
                "route_cache_invalidations_total",
                "Cached routes dropped by a registry or flag change",
                &["cause"],
            ),
            process: process_registry(),
            registry: with_build_info(registry),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&[&self.registry, &self.process])
    }

    /// Exports `aura_context_table_rows`, the rows of the `tda.context` table, read from
    /// `rows` at every scrape. Registered once, like [`Metrics::watch_route_cache`].
    /// Exports `aura_pattern_library_version`: the version of the pattern library routing uses
    /// now (each learned change bumps it; the shipped library's while `patterns.shipped` is on).
    pub fn watch_pattern_library(&self, version: impl Fn() -> usize + Send + Sync + 'static) {
        let gauge = IntGauge::new(
            "pattern_library_version",
            "Version of the pattern library routing uses now",
        )
        .expect("valid metric");
        let _ = self.registry.register(Box::new(ScrapedGauge {
            gauge,
            read: version,
        }));
    }

    pub fn watch_context_table(&self, rows: impl Fn() -> usize + Send + Sync + 'static) {
        let gauge = IntGauge::new("context_table_rows", "Rows in the tda.context table")
            .expect("valid metric");
        let _ = self
            .registry
            .register(Box::new(ScrapedGauge { gauge, read: rows }));
    }
}

/// What `aura lag --serve` exports: a group's lag as the broker sees it, so the dashboard's lag
/// panel and the lag alerts keep working while every instance of the group is down.
#[derive(Clone)]
pub struct GroupLagMetrics {
    registry: Registry,
    process: Registry,
    /// `aura_group_committed_offset{group, topic, partition}`.
    pub committed: IntGaugeVec,
    /// `aura_group_end_offset{group, topic, partition}`: the high watermark.
    pub end: IntGaugeVec,
    /// `aura_group_lag{group, topic, partition}`: end minus committed offset.
    pub lag: IntGaugeVec,
    /// `aura_group_partition_owned{group, topic, partition}`: 1 while a member owns it, else 0.
    pub owned: IntGaugeVec,
    /// `aura_group_members{group}`.
    pub members: IntGaugeVec,
    /// `aura_group_lag_refreshes_total{group, outcome}`: `ok` or `error` (broker unreachable).
    pub refreshes: IntCounterVec,
    /// `aura_group_lag_last_success_timestamp_seconds{group}`: when the values above were read.
    pub last_success: IntGaugeVec,
}

impl GroupLagMetrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("aura".into()), None).expect("valid prefix");
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let partition = &["group", "topic", "partition"];
        let refreshes = IntCounterVec::new(
            Opts::new(
                "group_lag_refreshes_total",
                "Lag reads from the broker by outcome",
            ),
            &["group", "outcome"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(refreshes.clone()))
            .expect("unique metric");
        Self {
            committed: gauges(
                "group_committed_offset",
                "The group's committed offset per partition",
                partition,
            ),
            end: gauges(
                "group_end_offset",
                "End offset (high watermark) per partition",
                partition,
            ),
            lag: gauges(
                "group_lag",
                "Records not yet committed by the group per partition, from the broker",
                partition,
            ),
            owned: gauges(
                "group_partition_owned",
                "1 while a group member owns the partition, else 0",
                partition,
            ),
            members: gauges("group_members", "Members of the consumer group", &["group"]),
            last_success: gauges(
                "group_lag_last_success_timestamp_seconds",
                "Unix time of the last successful lag read",
                &["group"],
            ),
            refreshes,
            process: process_registry(),
            registry: with_build_info(registry),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&[&self.registry, &self.process])
    }
}

impl Default for GroupLagMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The text exposition of several registries, one after the other.
fn render(registries: &[&Registry]) -> String {
    let families: Vec<MetricFamily> = registries.iter().flat_map(|r| r.gather()).collect();
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut buf)
        .expect("text encoding cannot fail");
    String::from_utf8(buf).expect("Prometheus text is UTF-8")
}

/// A registry with the `process_*` collector, where the platform has one (Linux /proc).
fn process_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(target_os = "linux")]
    registry
        .register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))
        .expect("unique metric");
    registry
}

/// Adds `<prefix>_build_info{version}` = 1 to `registry`: which build runs where, the usual way
/// (join it on `instance` to label other series with the version).
fn with_build_info(registry: Registry) -> Registry {
    let info = IntGaugeVec::new(
        Opts::new("build_info", "The running build; always 1"),
        &["version"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(info)).expect("unique metric");
    registry
}

/// A gauge whose value is read when scraped, from state owned elsewhere.
struct ScrapedGauge<F> {
    gauge: IntGauge,
    read: F,
}

impl<F: Fn() -> usize + Send + Sync> Collector for ScrapedGauge<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.gauge.set((self.read)() as i64);
        self.gauge.collect()
    }
}

impl Metrics {
    /// Exports the route cache's lookups as `aura_route_cache_lookups_total{result="hit|miss"}`,
    /// read from `stats` (total hits, total misses) at every scrape. Registered once; a second
    /// call (the same metrics for a restarted service) keeps the first.
    pub fn watch_route_cache(&self, stats: impl Fn() -> (u64, u64) + Send + Sync + 'static) {
        let lookups = IntCounterVec::new(
            Opts::new(
                "route_cache_lookups_total",
                "Route decisions served from the cache (hit) or computed (miss)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let _ = self
            .registry
            .register(Box::new(RouteCacheLookups { lookups, stats }));
    }
}

/// The router counts its own cache lookups; this copies the totals in when scraped.
struct RouteCacheLookups<F> {
    lookups: IntCounterVec,
    stats: F,
}

impl<F: Fn() -> (u64, u64) + Send + Sync> Collector for RouteCacheLookups<F> {
    fn desc(&self) -> Vec<&Desc> {
        self.lookups.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (hits, misses) = (self.stats)();
        for (result, total) in [("hit", hits), ("miss", misses)] {
            let counter = self.lookups.with_label_values(&[result]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
        self.lookups.collect()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A histogram for latencies in microseconds, from 1 µs to 10 minutes at 3 significant
/// digits. Bounded, so `saturating_record` clamps instead of silently losing range.
pub fn latency_histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_the_prefix_and_labels() {
        let m = Metrics::new();
        m.records_in.with_label_values(&["tda.anomalies"]).inc();
        m.dead_letters
            .with_label_values(&["DECODE", "no_magic_byte"])
            .inc();
        let text = m.render();
        assert!(
            text.contains("aura_records_in_total{topic=\"tda.anomalies\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("aura_dead_letters_total{reason=\"no_magic_byte\",stage=\"DECODE\"} 1")
        );
    }

    #[test]
    fn process_build_info_and_context_rows_are_exported() {
        let m = Metrics::new();
        let rows = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(7));
        let seen = rows.clone();
        m.watch_context_table(move || seen.load(std::sync::atomic::Ordering::Relaxed));
        let text = m.render();
        assert!(text.contains("aura_context_table_rows 7"), "{text}");
        let info = format!(
            "aura_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&info), "{text}");
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes ",
            "process_start_time_seconds ",
        ] {
            assert!(text.contains(name), "{name} missing:\n{text}");
        }
        rows.store(9, std::sync::atomic::Ordering::Relaxed);
        assert!(m.render().contains("aura_context_table_rows 9"));
    }

    #[test]
    fn route_cache_lookups_follow_the_routers_own_counts() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let m = Metrics::new();
        let hits = std::sync::Arc::new(AtomicU64::new(3));
        let seen = hits.clone();
        m.watch_route_cache(move || (seen.load(Ordering::Relaxed), 1));
        let text = m.render();
        assert!(
            text.contains("aura_route_cache_lookups_total{result=\"hit\"} 3"),
            "{text}"
        );
        assert!(text.contains("aura_route_cache_lookups_total{result=\"miss\"} 1"));
        hits.store(5, Ordering::Relaxed);
        assert!(m
            .render()
            .contains("aura_route_cache_lookups_total{result=\"hit\"} 5"));
    }
}
