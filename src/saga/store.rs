//! One partition's sagas in memory, with their timer index kept in step.
//!
//! This is the reference way to drive [`SagaEngine`]: route each input to its saga, apply the
//! effects (state put or delete, timer set or clear) and hand the outputs back for publication.
//! The runtime writes [`SagaStore::record`] (or a tombstone) to the changelog for every
//! [`StateChange`] other than `Unchanged`, in the same transaction as the outputs.
//!
//! Like a Kafka Streams store, it holds each saga serialized: as its changelog record, the JSON
//! of [`SagaState`]. One exactly-sized buffer per saga takes about half the memory of the
//! decoded state's dozen small allocations, the changelog write needs no second encoding, and
//! what a restore reads back is byte for byte what ran. Each input decodes its saga once (a few
//! microseconds).

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::{AgentResult, AgentVote};

use super::census::SagaCensus;
use super::effects::{Effects, Ignored, StateChange};
use super::machine::{SagaEngine, SagaError, SagaStart};
use super::state::{PendingTimer, SagaState, SagaStatus};
use super::timers::TimerIndex;

/// One saga as the store keeps it.
#[derive(Debug, Clone)]
struct Stored {
    /// Kept beside the record so counting by status needs no decoding.
    status: SagaStatus,
    /// The changelog record: `SagaState` as JSON.
    record: Box<[u8]>,
}

/// The fields a restore needs from a record without decoding all of it.
#[derive(Deserialize)]
struct Header {
    saga_id: String,
    status: SagaStatus,
    #[serde(default)]
    timer: Option<PendingTimer>,
}

/// Sagas by id, their pending timers, and their count by status.
#[derive(Debug, Default, Clone)]
pub struct SagaStore {
    sagas: HashMap<String, Stored>,
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

    /// The saga, decoded.
    pub fn get(&self, saga_id: &str) -> Option<SagaState> {
        self.sagas.get(saga_id).map(decode)
    }

    /// The saga's changelog record, as stored.
    pub fn record(&self, saga_id: &str) -> Option<&[u8]> {
        self.sagas.get(saga_id).map(|s| &*s.record)
    }

    /// Puts a state, replacing the saga's timer with its own.
    pub fn insert(&mut self, s: SagaState) {
        self.put(&s);
    }

    /// Puts a changelog record as read back in a restore. A record that is not a saga state is
    /// refused and changes nothing.
    pub fn insert_record(&mut self, record: &[u8]) -> Result<(), serde_json::Error> {
        // The whole record, not only its header: `get` decodes it later and cannot fail then
        // (a record of another version, or a non-finite float written as `null`).
        serde_json::from_slice::<SagaState>(record)?;
        let header: Header = serde_json::from_slice(record)?;
        match header.timer {
            Some(t) => self.timers.set(super::state::Timer {
                saga_id: header.saga_id.clone(),
                kind: t.kind,
                due_ms: t.due_ms,
                seq: t.seq,
            }),
            None => self.timers.cancel(&header.saga_id),
        }
        let stored = Stored {
            status: header.status,
            record: record.into(),
        };
        let old = self.sagas.insert(header.saga_id, stored);
        self.census
            .moved(old.map(|o| o.status), Some(header.status));
        Ok(())
    }

    /// Drops a saga (a tombstone on the changelog) and its timer.
    pub fn remove(&mut self, saga_id: &str) -> Option<SagaState> {
        self.timers.cancel(saga_id);
        let removed = self.sagas.remove(saga_id);
        self.census.moved(removed.as_ref().map(|s| s.status), None);
        removed.as_ref().map(decode)
    }

    /// Every saga, decoded one at a time.
    pub fn iter(&self) -> impl Iterator<Item = SagaState> + '_ {
        self.sagas.values().map(decode)
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
        if let Some(mut s) = self.get(&req.saga_id) {
            let mut joined = false;
            let mut why = Ignored::Duplicate;
            for id in &req.anomaly_ids {
                match engine.join(&mut s, id, now_ms).ignored {
                    None => joined = true,
                    Some(w) => why = w,
                }
            }
            return Ok(if joined {
                self.put(&s);
                Effects::put()
            } else {
                Effects::ignored(why)
            });
        }
        let (state, fx) = engine.start(req, now_ms)?;
        self.apply(state, &fx);
        Ok(fx)
    }

    /// Applies an agent result to its saga; a result for no saga is unknown.
    pub fn on_result(&mut self, engine: &SagaEngine, r: &AgentResult, now_ms: i64) -> Effects {
        let Some(mut s) = self.get(&r.saga_id) else {
            return Effects::ignored(Ignored::Unknown);
        };
        let fx = engine.on_result(&mut s, r, now_ms);
        self.apply(s, &fx);
        fx
    }

    /// Counts an agent's vote in its saga; a vote for no saga is unknown.
    pub fn on_vote(&mut self, engine: &SagaEngine, v: &AgentVote, now_ms: i64) -> Effects {
        let Some(mut s) = self.get(&v.saga_id) else {
            return Effects::ignored(Ignored::Unknown);
        };
        let fx = engine.on_vote(&mut s, v, now_ms);
        self.apply(s, &fx);
        fx
    }

    /// Fires every timer due at `now_ms`, returning each saga's effects in due order.
    pub fn fire_due(&mut self, engine: &SagaEngine, now_ms: i64) -> Vec<(String, Effects)> {
        let mut all = Vec::new();
        for t in self.timers.due(now_ms) {
            let Some(mut s) = self.get(&t.saga_id) else {
                continue;
            };
            let fx = engine.on_timer(&mut s, &t, now_ms);
            self.apply(s, &fx);
            all.push((t.saga_id, fx));
        }
        all
    }

    /// Keeps `trace` as the saga's trace context (see [`SagaState::trace`]).
    pub fn set_trace(&mut self, saga_id: &str, trace: String) {
        if let Some(mut s) = self.get(saga_id) {
            s.trace = Some(trace);
            self.put(&s);
        }
    }

    /// The saga's trace context, read from its record without decoding the rest.
    pub fn trace_of(&self, saga_id: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct TraceOnly {
            #[serde(default)]
            trace: Option<String>,
        }
        let stored = self.sagas.get(saga_id)?;
        serde_json::from_slice::<TraceOnly>(&stored.record)
            .ok()?
            .trace
    }

    /// Keeps what the engine made of a saga, as its effects say.
    fn apply(&mut self, s: SagaState, fx: &Effects) {
        match fx.state {
            StateChange::Unchanged => {}
            StateChange::Put => self.put(&s),
            StateChange::Delete => {
                self.remove(&s.saga_id);
            }
        }
        self.timers.apply(&s.saga_id, &fx.timer);
    }

    /// Stores the state's record and keeps its timer and the census in step.
    fn put(&mut self, s: &SagaState) {
        match s.timer() {
            Some(t) => self.timers.set(t),
            None => self.timers.cancel(&s.saga_id),
        }
        let stored = Stored {
            status: s.status,
            record: serde_json::to_vec(s)
                .expect("saga state serializes")
                .into_boxed_slice(),
        };
        let old = match self.sagas.get_mut(&s.saga_id) {
            Some(slot) => Some(std::mem::replace(slot, stored)),
            None => self.sagas.insert(s.saga_id.clone(), stored),
        };
        self.census.moved(old.map(|o| o.status), Some(s.status));
    }
}

fn decode(stored: &Stored) -> SagaState {
    serde_json::from_slice(&stored.record)
        .expect("the store holds only records it encoded or checked")
}
