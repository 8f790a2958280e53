//! The timer index: every pending saga timer, ordered by due time.
//!
//! Timers are durable because they live in the saga states (and so in the changelog); this index is
//! only a derived view, rebuilt from the states after a restore. A timer that came due while no
//! instance was running is simply due at the first [`TimerIndex::due`] call after the rebuild. A
//! saga has at most one pending timer, so setting one replaces the saga's previous one.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::effects::TimerUpdate;
use super::state::{SagaState, Timer, TimerKind};

/// Pending timers by due time and by saga. The saga id is shared between both maps.
#[derive(Debug, Default, Clone)]
pub struct TimerIndex {
    by_due: BTreeSet<(i64, Arc<str>)>,
    by_saga: HashMap<Arc<str>, (i64, TimerKind, u32)>,
}

impl TimerIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of the timers held by `states`, e.g. right after a partition's restore.
    pub fn rebuild<'a>(states: impl IntoIterator<Item = &'a SagaState>) -> Self {
        let mut index = Self::new();
        for t in states.into_iter().filter_map(SagaState::timer) {
            index.set(t);
        }
        index
    }

    /// Adds `t`, replacing any timer of the same saga.
    pub fn set(&mut self, t: Timer) {
        self.cancel(&t.saga_id);
        let id: Arc<str> = Arc::from(t.saga_id);
        self.by_due.insert((t.due_ms, id.clone()));
        self.by_saga.insert(id, (t.due_ms, t.kind, t.seq));
    }

    /// Removes the saga's timer, if any.
    pub fn cancel(&mut self, saga_id: &str) {
        if let Some((id, (due, _, _))) = self.by_saga.remove_entry(saga_id) {
            self.by_due.remove(&(due, id));
        }
    }

    /// Applies an engine's timer change for `saga_id`.
    pub fn apply(&mut self, saga_id: &str, update: &TimerUpdate) {
        match update {
            TimerUpdate::Unchanged => {}
            TimerUpdate::Set(t) => self.set(t.clone()),
            TimerUpdate::Clear => self.cancel(saga_id),
        }
    }

    /// Removes and returns every timer due at or before `now_ms`, earliest first. The caller fires
    /// each with `SagaEngine::on_timer`, which sets the saga's next timer if it has one.
    pub fn due(&mut self, now_ms: i64) -> Vec<Timer> {
        let mut out = Vec::new();
        while self.by_due.first().is_some_and(|(due, _)| *due <= now_ms) {
            let Some((due, id)) = self.by_due.pop_first() else {
                break;
            };
            if let Some((_, kind, seq)) = self.by_saga.remove(&id) {
                out.push(Timer {
                    saga_id: id.to_string(),
                    kind,
                    due_ms: due,
                    seq,
                });
            }
        }
        out
    }

    /// When the earliest timer is due, for sleeping until then.
    pub fn next_due(&self) -> Option<i64> {
        self.by_due.first().map(|(due, _)| *due)
    }

    /// The saga's pending timer.
    pub fn get(&self, saga_id: &str) -> Option<Timer> {
        self.by_saga.get(saga_id).map(|&(due_ms, kind, seq)| Timer {
            saga_id: saga_id.to_string(),
            kind,
            due_ms,
            seq,
        })
    }

    /// Pending timers (a metric).
    pub fn len(&self) -> usize {
        self.by_saga.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_saga.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(saga: &str, due: i64, seq: u32) -> Timer {
        Timer {
            saga_id: saga.into(),
            kind: TimerKind::StepTimeout,
            due_ms: due,
            seq,
        }
    }

    #[test]
    fn due_pops_in_order_and_setting_replaces_the_sagas_timer() {
        let mut idx = TimerIndex::new();
        idx.set(t("b", 30, 1));
        idx.set(t("a", 10, 1));
        idx.set(t("c", 20, 1));
        idx.set(t("c", 50, 2));
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.next_due(), Some(10));
        let due: Vec<(String, i64)> = idx
            .due(30)
            .into_iter()
            .map(|t| (t.saga_id, t.due_ms))
            .collect();
        assert_eq!(due, [("a".to_string(), 10), ("b".to_string(), 30)]);
        assert!(idx.due(49).is_empty());
        assert_eq!(idx.get("c"), Some(t("c", 50, 2)));
        idx.apply("c", &TimerUpdate::Clear);
        assert!(idx.is_empty());
        assert_eq!(idx.next_due(), None);
    }
}
