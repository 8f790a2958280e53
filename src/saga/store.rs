//! One partition's sagas in memory, with their timer index kept in step.
//!
//! This is the reference way to drive [`SagaEngine`]: route each input to its saga, apply the
//! effects (state put or delete, timer set or clear) and hand the outputs back for publication. The
//! runtime's changelogged store can wrap or replace the map; whatever it does, it must write the
//! state (or a tombstone) for every [`StateChange`] other than `Unchanged`, in the same transaction
//! as the outputs.

use std::collections::HashMap;

use crate::model::AgentResult;

use super::census::SagaCensus;
use super::effects::{Effects, Ignored, StateChange};
use super::machine::{SagaEngine, SagaError, SagaStart};
use super::state::SagaState;
use super::timers::TimerIndex;

/// Sagas by id, their pending timers, and their count by status.
#[derive(Debug, Default, Clone)]
pub struct SagaStore {
    /// Boxed: a map keeps spare slots, and a spare slot the size of a state costs more than
    /// a spare pointer.
    sagas: HashMap<String, Box<SagaState>>,
    timers: TimerIndex,
    census: SagaCensus,
}

impl SagaStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The store after a restore: the states read back from the changelog, timers rebuilt.
    pub fn restore(states: impl IntoIterator<Item = SagaState>) -> Self {
        let mut store = Self::new();
        for s in states {
            store.insert(s);
        }
        store
    }

    pub fn get(&self, saga_id: &str) -> Option<&SagaState> {
        self.sagas.get(saga_id).map(|s| &**s)
    }

    /// Puts a state as read from the changelog, replacing the saga's timer with its own.
    pub fn insert(&mut self, s: SagaState) {
        match s.timer() {
            Some(t) => self.timers.set(t),
            None => self.timers.cancel(&s.saga_id),
        }
        let status = s.status;
        let old = self.sagas.insert(s.saga_id.clone(), Box::new(s));
        self.census.moved(old.map(|o| o.status), Some(status));
    }

    /// Drops a saga (a tombstone on the changelog) and its timer.
    pub fn remove(&mut self, saga_id: &str) -> Option<SagaState> {
        self.timers.cancel(saga_id);
        let removed = self.sagas.remove(saga_id).map(|s| *s);
        self.census.moved(removed.as_ref().map(|s| s.status), None);
        removed
    }

    pub fn iter(&self) -> impl Iterator<Item = &SagaState> {
        self.sagas.values().map(|s| &**s)
    }

    pub fn len(&self) -> usize {
        self.sagas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sagas.is_empty()
    }

    pub fn timers(&self) -> &TimerIndex {
        &self.timers
    }

    /// Sagas by status and pending timers, as of now.
    pub fn census(&self) -> SagaCensus {
        let mut census = self.census;
        census.timers = self.timers.len() as i64;
        census
    }

    /// Starts the incident's saga, or joins the running one: a storm of anomalies with one saga id
    /// makes one saga. Every anomaly id of `req` beyond a joined saga's is joined.
    pub fn start_or_join(
        &mut self,
        engine: &SagaEngine,
        req: SagaStart,
        now_ms: i64,
    ) -> Result<Effects, SagaError> {
        if let Some(s) = self.sagas.get_mut(&req.saga_id) {
            let before = s.status;
            let mut joined = false;
            let mut why = Ignored::Duplicate;
            for id in &req.anomaly_ids {
                match engine.join(s, id, now_ms).ignored {
                    None => joined = true,
                    Some(w) => why = w,
                }
            }
            let after = s.status;
            self.census.moved(Some(before), Some(after));
            return Ok(if joined {
                Effects::put()
            } else {
                Effects::ignored(why)
            });
        }
        let saga_id = req.saga_id.clone();
        let (state, fx) = engine.start(req, now_ms)?;
        self.census.moved(None, Some(state.status));
        self.sagas.insert(saga_id.clone(), Box::new(state));
        self.apply(&saga_id, &fx);
        Ok(fx)
    }

    /// Applies an agent result to its saga; a result for no saga is unknown.
    pub fn on_result(&mut self, engine: &SagaEngine, r: &AgentResult, now_ms: i64) -> Effects {
        let Some(s) = self.sagas.get_mut(&r.saga_id) else {
            return Effects::ignored(Ignored::Unknown);
        };
        let before = s.status;
        let fx = engine.on_result(s, r, now_ms);
        let after = s.status;
        self.census.moved(Some(before), Some(after));
        self.apply(&r.saga_id, &fx);
        fx
    }

    /// Fires every timer due at `now_ms`, returning each saga's effects in due order.
    pub fn fire_due(&mut self, engine: &SagaEngine, now_ms: i64) -> Vec<(String, Effects)> {
        let mut all = Vec::new();
        for t in self.timers.due(now_ms) {
            let Some(s) = self.sagas.get_mut(&t.saga_id) else {
                continue;
            };
            let before = s.status;
            let fx = engine.on_timer(s, &t, now_ms);
            let after = s.status;
            self.census.moved(Some(before), Some(after));
            self.apply(&t.saga_id, &fx);
            all.push((t.saga_id, fx));
        }
        all
    }

    fn apply(&mut self, saga_id: &str, fx: &Effects) {
        self.timers.apply(saga_id, &fx.timer);
        if fx.state == StateChange::Delete {
            self.remove(saga_id);
        }
    }
}
