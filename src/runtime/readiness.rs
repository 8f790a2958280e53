//! What `/readyz` reports: is this instance able to serve its share of the stream?

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// Updated by the runtime, read by the HTTP server.
#[derive(Default)]
pub struct Readiness {
    running: AtomicBool,
    tables_restored: AtomicBool,
    assigned_partitions: AtomicI64,
    /// Tasks restoring their stores; not ready while any is.
    restoring: AtomicI64,
}

impl Readiness {
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
    }

    pub fn set_tables_restored(&self) {
        self.tables_restored.store(true, Ordering::Release);
    }

    pub fn set_assigned(&self, partitions: i64) {
        self.assigned_partitions
            .store(partitions, Ordering::Release);
    }

    /// Counts a task starting (+1) or finishing (-1) its restore.
    pub fn restoring(&self, delta: i64) {
        self.restoring.fetch_add(delta, Ordering::AcqRel);
    }

    pub fn assigned(&self) -> i64 {
        self.assigned_partitions.load(Ordering::Acquire)
    }

    /// Ready when the stream loop runs, the tables are loaded and the group has given this
    /// instance at least one partition. The reason says what is missing.
    pub fn check(&self) -> Result<(), &'static str> {
        if !self.running.load(Ordering::Acquire) {
            return Err("stream loop not running");
        }
        if !self.tables_restored.load(Ordering::Acquire) {
            return Err("tables still loading");
        }
        if self.assigned() == 0 {
            return Err("no partitions assigned yet");
        }
        if self.restoring.load(Ordering::Acquire) > 0 {
            return Err("restoring state stores");
        }
        Ok(())
    }
}
