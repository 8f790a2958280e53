//! Heap bytes per active saga: 100,000 incidents routed by the real anomaly chain start 100,000
//! sagas in one partition's incident task, and a counting allocator measures what they hold
//! (saga states, open incidents, timer indexes, maps). `aura bench recovery` measures the resident memory of a whole
//! service; this isolates the store's share of it.
//!
//! `cargo bench --bench saga_memory [-- SAGAS]`

// A global allocator is an unsafe trait; this one only counts and forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use aura::config::Config;
use aura::generator::Generator;
use aura::processor::{Event, Output};
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
        let mut generator = Generator::new(5, 1 << 40, 0.0);
        (0..sagas).map(move |_| generator.anomaly(now_ms))
    };

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let resident_before = resident_bytes();
    let mut task = make(0);
    let mut out = Vec::new();
    for anomaly in anomalies() {
        task.process(Event::Anomaly(anomaly), now_ms, &mut out)
            .expect("generated anomalies are valid");
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
    drop(task);

    // The same sagas read back from their changelog records, as a restarted instance holds them.
    let mut records = std::collections::HashMap::new();
    let mut source = make(0);
    for anomaly in anomalies() {
        source
            .process(Event::Anomaly(anomaly), now_ms, &mut out)
            .expect("generated anomalies are valid");
        for o in out.drain(..) {
            if let Output::State { store, key, value } = o {
                records.insert((store, key), value);
            }
        }
    }
    drop(source);
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
