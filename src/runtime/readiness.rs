//! What `/readyz` reports: is this instance able to serve its share of the stream?
//!
//! Not ready when: the stream loop is not running; a table has not loaded (with the last
//! load error, if any); a store is restoring; a partition task died and its generation has
//! not restarted yet; a partition has been paused with no progress for [`STALL_AFTER`]; or
//! the loop restarted [`RESTART_LOOP`] times within [`RESTART_WINDOW`]. An instance the group
//! gave no partition (more instances than partitions) is ready, as a standby: a rollout
//! must not wait on it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A paused partition whose task has taken nothing for this long is reported stalled.
pub const STALL_AFTER: Duration = Duration::from_secs(60);
/// This many restarts of the stream loop ...
pub const RESTART_LOOP: usize = 3;
/// ... within this window make a restart loop.
pub const RESTART_WINDOW: Duration = Duration::from_secs(120);

/// Updated by the runtime, read by the HTTP server.
#[derive(Default)]
pub struct Readiness {
    running: AtomicBool,
    tables_restored: AtomicBool,
    assigned_partitions: AtomicI64,
    /// Set once the group has answered with an assignment (possibly empty).
    rebalanced: AtomicBool,
    /// Tasks restoring their stores; not ready while any is.
    restoring: AtomicI64,
    /// Partitions paused without progress for longer than [`STALL_AFTER`].
    stalled: AtomicI64,
    /// Why the last partition task died, until the loop restarts.
    dead_task: Mutex<Option<String>>,
    /// Why the tables have not loaded, while they have not.
    table_error: Mutex<Option<String>>,
    /// When the stream loop restarted, newest last, with the last reason.
    restarts: Mutex<(VecDeque<Instant>, String)>,
}

impl Readiness {
    pub fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::Release);
        if running {
            *self.dead_task.lock().unwrap_or_else(|e| e.into_inner()) = None;
            self.stalled.store(0, Ordering::Release);
        }
    }

    pub fn set_tables_restored(&self) {
        self.tables_restored.store(true, Ordering::Release);
        *self.table_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// A table load failed and is being retried.
    pub fn set_table_error(&self, error: String) {
        *self.table_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    pub fn set_assigned(&self, partitions: i64) {
        self.assigned_partitions
            .store(partitions, Ordering::Release);
    }

    /// The group answered with this instance's assignment (maybe none).
    pub fn set_rebalanced(&self) {
        self.rebalanced.store(true, Ordering::Release);
    }

    /// Counts a task starting (+1) or finishing (-1) its restore.
    pub fn restoring(&self, delta: i64) {
        self.restoring.fetch_add(delta, Ordering::AcqRel);
    }

    pub fn set_stalled(&self, partitions: i64) {
        self.stalled.store(partitions, Ordering::Release);
    }

    /// A partition task died (panicked or failed); cleared when the loop runs again.
    pub fn task_died(&self, why: String) {
        *self.dead_task.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The stream loop restarts, for `why`.
    pub fn restarted(&self, why: String) {
        self.restarted_at(Instant::now(), why);
    }

    fn restarted_at(&self, at: Instant, why: String) {
        let mut r = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
        r.0.push_back(at);
        while r.0.len() > RESTART_LOOP {
            r.0.pop_front();
        }
        r.1 = why;
    }

    pub fn assigned(&self) -> i64 {
        self.assigned_partitions.load(Ordering::Acquire)
    }

    /// No partition, but a member of the group: a standby.
    pub fn is_standby(&self) -> bool {
        self.assigned() == 0 && self.rebalanced.load(Ordering::Acquire)
    }

    /// What a ready instance does: its partitions, or standby.
    pub fn summary(&self) -> String {
        if self.is_standby() {
            "standby: no partitions assigned (more instances than partitions)".into()
        } else {
            format!("{} partitions", self.assigned())
        }
    }

    /// Ready when the stream loop runs healthily, the tables are loaded and the group has
    /// answered (with partitions, or none: a standby). The reason says what is missing.
    pub fn check(&self) -> Result<(), String> {
        self.check_at(Instant::now())
    }

    fn check_at(&self, now: Instant) -> Result<(), String> {
        {
            let r = self.restarts.lock().unwrap_or_else(|e| e.into_inner());
            if r.0.len() >= RESTART_LOOP
                && r.0
                    .front()
                    .is_some_and(|first| now.duration_since(*first) < RESTART_WINDOW)
            {
                return Err(format!(
                    "restart loop: {} restarts within {} s; last: {}",
                    r.0.len(),
                    RESTART_WINDOW.as_secs(),
                    r.1
                ));
            }
        }
        if let Some(why) = &*self.dead_task.lock().unwrap_or_else(|e| e.into_inner()) {
            return Err(format!("a partition task died: {why}"));
        }
        if !self.running.load(Ordering::Acquire) {
            return Err("stream loop not running".into());
        }
        if !self.tables_restored.load(Ordering::Acquire) {
            return Err(
                match &*self.table_error.lock().unwrap_or_else(|e| e.into_inner()) {
                    Some(error) => format!("tables not loaded; retrying after: {error}"),
                    None => "tables still loading".into(),
                },
            );
        }
        if self.assigned() == 0 && !self.rebalanced.load(Ordering::Acquire) {
            return Err("no partitions assigned yet".into());
        }
        if self.restoring.load(Ordering::Acquire) > 0 {
            return Err("restoring state stores".into());
        }
        let stalled = self.stalled.load(Ordering::Acquire);
        if stalled > 0 {
            return Err(format!(
                "{stalled} partitions paused with no progress for over {} s",
                STALL_AFTER.as_secs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Readiness {
        let r = Readiness::default();
        r.set_running(true);
        r.set_tables_restored();
        r.set_rebalanced();
        r.set_assigned(3);
        r
    }

    #[test]
    fn a_healthy_instance_is_ready_with_its_partitions() {
        let r = healthy();
        assert_eq!(r.check(), Ok(()));
        assert_eq!(r.summary(), "3 partitions");
    }

    #[test]
    fn an_idle_standby_is_ready_and_says_so() {
        let r = healthy();
        r.set_assigned(0);
        assert_eq!(r.check(), Ok(()));
        assert!(r.summary().starts_with("standby"));
        let joining = Readiness::default();
        joining.set_running(true);
        joining.set_tables_restored();
        assert_eq!(joining.check().unwrap_err(), "no partitions assigned yet");
    }

    #[test]
    fn a_dead_task_a_stall_and_an_unloaded_table_are_reported() {
        let r = healthy();
        r.task_died("partition 2 panicked: boom".into());
        assert!(r.check().unwrap_err().contains("partition 2 panicked"));
        r.set_running(true); // the restarted loop clears it
        assert_eq!(r.check(), Ok(()));

        r.set_stalled(1);
        assert!(r.check().unwrap_err().contains("1 partitions paused"));
        r.set_stalled(0);

        let t = Readiness::default();
        t.set_running(true);
        t.set_table_error("broker down".into());
        assert!(t.check().unwrap_err().contains("broker down"));
    }

    #[test]
    fn three_restarts_in_two_minutes_are_a_restart_loop_and_it_ages_out() {
        let r = healthy();
        let t0 = Instant::now();
        r.restarted_at(t0, "a".into());
        r.restarted_at(t0 + Duration::from_secs(10), "b".into());
        assert_eq!(r.check_at(t0 + Duration::from_secs(11)), Ok(()));
        r.restarted_at(t0 + Duration::from_secs(20), "commit failed".into());
        let why = r.check_at(t0 + Duration::from_secs(21)).unwrap_err();
        assert!(
            why.contains("restart loop") && why.contains("commit failed"),
            "{why}"
        );
        assert_eq!(
            r.check_at(t0 + RESTART_WINDOW + Duration::from_secs(1)),
            Ok(())
        );
    }
}
