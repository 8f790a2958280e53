//! Heap bytes per active saga: 100,000 incidents routed by the real anomaly chain start 100,000
//! sagas in one partition's saga processor, and a counting allocator measures what they hold
//! (states, timer index, maps). `aura bench recovery` measures the resident memory of a whole
//! service; this isolates the store's share of it.
//!
//! `cargo bench --bench saga_memory [-- SAGAS]`

// A global allocator is an unsafe trait; this one only counts and forwards to the system's.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use aura::generator::Generator;
use aura::processor::{AnomalyRouter, Event, Output, Processor, RouterSettings, SagaProcessor};
use aura::saga::{SagaConfig, SagaEngine, Workflows};
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
    let settings = RouterSettings {
        sagas: true,
        ..Default::default()
    };
    let mut router = AnomalyRouter::new(settings, Arc::default(), engine);
    let workflows = Arc::new(Workflows::builtin().expect("built-in workflows load"));
    let saga_engine = Arc::new(SagaEngine::new(workflows, SagaConfig::default()));
    let metrics = Metrics::new();
    let store_engine = saga_engine.clone();
    let mut store = SagaProcessor::new(saga_engine, &metrics.sagas);
    // Every anomaly from its own source: one incident, so one saga, each.
    let mut generator = Generator::new(5, 1 << 40, 0.0);
    let now_ms = 1_800_000_000_000;

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let resident_before = resident_bytes();
    let (mut out, mut triggers) = (Vec::new(), Vec::new());
    for _ in 0..sagas {
        router
            .process(
                Event::Anomaly(generator.anomaly(now_ms)),
                now_ms,
                &mut triggers,
            )
            .expect("generated anomalies are valid");
        for trigger in triggers.drain(..) {
            let Output::SagaTrigger(command) = trigger else {
                panic!("with sagas on, the router emits triggers only");
            };
            store
                .process(Event::SagaTrigger(command), now_ms, &mut out)
                .expect("the saga starts");
            out.clear(); // what the runtime would have produced and dropped
        }
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let resident = resident_bytes() - resident_before;
    println!(
        "saga_memory: {sagas} active sagas hold {:.1} MiB of heap, {:.0} bytes per saga; resident memory grew {:.0} bytes per saga",
        held as f64 / 1048576.0,
        held as f64 / sagas as f64,
        resident as f64 / sagas as f64,
    );

    // The same sagas read back from their changelog records, as a restarted instance holds them.
    let records: Vec<(String, Vec<u8>)> = store
        .store()
        .iter()
        .map(|s| {
            let record = store
                .store()
                .record(&s.saga_id)
                .expect("listed sagas exist");
            (s.saga_id.clone(), record.to_vec())
        })
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut restored = SagaProcessor::new(store_engine, &metrics.sagas);
    for (key, value) in &records {
        restored.restore(aura::processor::SAGA_STORE, key, Some(value));
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    println!(
        "saga_memory: the same sagas restored from the changelog: {:.0} bytes per saga; size_of::<SagaState>() = {}",
        held as f64 / sagas as f64,
        std::mem::size_of::<aura::saga::SagaState>()
    );
    drop((store, restored));
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
