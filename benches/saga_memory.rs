//! Heap bytes per active saga: 100,000 incidents routed by the real anomaly chain start 100,000
//! sagas in one partition's incident task, and a counting allocator measures what they hold
//! (saga states, open incidents, timer indexes, maps). `aura bench recovery` measures the resident memory of a whole
//! service; this isolates the store's share of it.
//!
//! `cargo bench --bench saga_memory [-- SAGAS] [--scenario NAME] [--answer-first]`
//!
//! `--scenario` picks the generator's archetype (default `mixed`, `aura produce`'s mix); with
//! `network-partition` every saga waits on a fan-out of three branches. `--answer-first`
//! answers each saga's first command, so the second step is the one in flight: with
//! `cascading-failure` that is a consensus with three ballots out.

// A global allocator is an unsafe trait; this one only counts and forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use aura::config::Config;
use aura::generator::Generator;
use aura::model::{AgentResult, ResultStatus};
use aura::processor::{Event, Output, Processor};
use aura::saga::state::{parse_command_id, Part};
use aura::semantic::{Engine, PatternLibrary, SemanticConfig};
use aura::telemetry::Metrics;

/// The system allocator, counting the bytes it has handed out and not taken back.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it,
    // as a quick check that it still works.
    let benching = std::env::args().any(|a| a == "--bench");
    let sagas: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 100_000 } else { 1_000 });
    let arg_after = |flag: &str| {
        let args: Vec<String> = std::env::args().collect();
        let at = args.iter().position(|a| a == flag)?;
        args.get(at + 1).cloned()
    };
    let scenario = arg_after("--scenario").unwrap_or_else(|| "mixed".into());
    let answer_first = std::env::args().any(|a| a == "--answer-first");
    let engine = Arc::new(Engine::new(
        SemanticConfig::default(),
        PatternLibrary::builtin(),
    ));
    let metrics = Metrics::new();
    let make = aura::app::incident_tasks(&Config::default(), &metrics, Arc::default(), engine, 1)
        .expect("built-in workflows load");
    let now_ms = 1_800_000_000_000;
    // Every anomaly from its own source: one incident, so one saga, each.
    let anomalies = || {
        let mut generator =
            Generator::for_scenario(&scenario, 5, 0.3, 1 << 40, 0.0).expect("a known scenario");
        (0..sagas).map(move |_| generator.anomaly(now_ms))
    };
    // Feeds the incident task one anomaly (and, with --answer-first, a success for the first
    // command), keeping what it wrote; counts the coordination steps left in flight.
    let in_flight = [std::cell::Cell::new(0usize), std::cell::Cell::new(0usize)];
    let feed = |task: &mut Box<dyn Processor>, anomaly, out: &mut Vec<Output>| {
        task.process(Event::Anomaly(anomaly), now_ms, out)
            .expect("generated anomalies are valid");
        let first = out.iter().find_map(|o| match o {
            Output::Command(c) => Some(c.clone()),
            _ => None,
        });
        if let (true, Some(c)) = (answer_first, first) {
            let result = AgentResult {
                command_id: c.command_id,
                saga_id: c.saga_id,
                correlation_id: c.correlation_id,
                step: c.step,
                attempt: c.attempt,
                agent_id: "bench".into(),
                agent_type: c.agent_type,
                status: ResultStatus::Succeeded,
                output: Default::default(),
                error: None,
                finished_at: now_ms,
                proof: None,
            };
            task.process(Event::AgentResult(result), now_ms, out)
                .expect("the result applies");
        }
        // A fan-out's first branch, or a consensus's first ballot, says which is in flight.
        let part = out.iter().find_map(|o| match o {
            Output::Command(c) => parse_command_id(&c.saga_id, &c.command_id)
                .filter(|id| id.branch == Some(0))
                .map(|id| id.part),
            _ => None,
        });
        match part {
            Some(Part::Step) => in_flight[0].set(in_flight[0].get() + 1),
            Some(Part::Ballot) => in_flight[1].set(in_flight[1].get() + 1),
            _ => {}
        }
    };

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let resident_before = resident_bytes();
    let mut task = make(0);
    let mut out = Vec::new();
    for anomaly in anomalies() {
        feed(&mut task, anomaly, &mut out);
        out.clear(); // what the runtime would have produced and dropped
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let resident = resident_bytes() - resident_before;
    println!(
        "saga_memory: {sagas} active sagas hold {:.1} MiB of heap, {:.0} bytes per saga (incident included); resident memory grew {:.0} bytes per saga",
        held as f64 / 1048576.0,
        held as f64 / sagas as f64,
        resident as f64 / sagas as f64,
    );
    println!(
        "saga_memory: scenario {scenario}{}: {} sagas wait on a fan-out, {} on a consensus",
        if answer_first {
            ", first command answered"
        } else {
            ""
        },
        in_flight[0].get(),
        in_flight[1].get(),
    );
    drop(task);

    // The same sagas read back from their changelog records, as a restarted instance holds them.
    let mut records = std::collections::HashMap::new();
    let mut source = make(0);
    for anomaly in anomalies() {
        feed(&mut source, anomaly, &mut out);
        for o in out.drain(..) {
            if let Output::State { store, key, value } = o {
                records.insert((store, key), value);
            }
        }
    }
    drop(source);
    // Each store's share: its changelog records are what it holds, byte for byte.
    let mut by_store: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for ((store, _), value) in &records {
        let e = by_store.entry(store).or_default();
        e.0 += 1;
        e.1 += value.as_ref().map_or(0, Vec::len);
    }
    for (store, (n, bytes)) in &by_store {
        println!(
            "saga_memory: store {store}: {n} records of {:.0} bytes on average",
            *bytes as f64 / (*n).max(1) as f64
        );
    }
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut restored = make(0);
    for ((store, key), value) in &records {
        restored.restore(store, key, value.as_deref());
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    println!(
        "saga_memory: the same sagas restored from the changelog: {:.0} bytes per saga; size_of::<SagaState>() = {}",
        held as f64 / sagas as f64,
        std::mem::size_of::<aura::saga::SagaState>()
    );
    drop(restored);
}

/// This process's resident set size (Linux), in bytes.
fn resident_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}
