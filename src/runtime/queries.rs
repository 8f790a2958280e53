//! Read-only queries of the state that partition tasks own, as Kafka Streams' interactive
//! queries do it.
//!
//! A store's keys are spread over partitions by the producers' partitioner, and each
//! partition's state belongs to one task of one instance. To read a key: compute its partition
//! ([`partition_for`]); if a task of this instance owns that partition, ask it through its query
//! channel. The task answers between two records, so its processor keeps a single owner and
//! needs no lock. Otherwise, say which partition to ask for, so the caller can find the owner
//! in the consumer group's assignment.
//!
//! An answer is the task's in-memory state: with exactly-once it can be ahead of what other
//! readers see by up to one commit interval, never behind what was committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::partitioner::partition_for;

/// How long a query waits for its task, which may be in the middle of a record or a commit.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys of a store live.
#[derive(Debug, Clone)]
pub struct KeyRouting {
    /// The input topic whose partitioning decides the owning task, e.g. the saga triggers.
    pub topic: String,
    pub partitions: i32,
    /// The consumer group whose assignment names each partition's owner.
    pub group: String,
    /// The part of a key the partitioner hashes: a saga id `<correlation key>@<ms>` is
    /// partitioned by its correlation key (docs/KEYS.md).
    pub partition_key: fn(&str) -> &str,
}

/// One question to a task: the value of `key` in `store`.
pub struct Query {
    pub store: String,
    pub key: String,
    pub reply: oneshot::Sender<Option<Value>>,
}

/// Where a key was looked for, and what was found there.
#[derive(Debug)]
pub struct Lookup {
    pub partition: i32,
    pub routing: KeyRouting,
    pub outcome: Outcome,
}

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The owning task is here and holds the key.
    Found(Value),
    /// The owning task is here and does not hold the key.
    Missing,
    /// The owning task is here but still restoring its stores from their changelogs.
    Restoring,
    /// No task of this instance owns the partition.
    Elsewhere,
    /// The owning task stopped or did not answer in time (a rebalance is moving it, or it is
    /// stuck on the broker); asking again shortly finds its new owner.
    Unanswered,
}

/// Why no lookup was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The service does not run the store (e.g. sagas are disabled).
    Off,
    /// The store's topics are not set up yet (the service is starting).
    Starting,
}

/// The registry of this instance's live tasks and the stores they answer for. Shared by the
/// runtime, which registers tasks, and the HTTP server, which asks.
#[derive(Default)]
pub struct StateQueries {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `None`: switched off.
    stores: HashMap<String, Option<KeyRouting>>,
    tasks: HashMap<(String, i32), Owner>,
    next_id: u64,
}

struct Owner {
    /// Tells a task from its successor on the same partition.
    id: u64,
    /// `None` while the task restores.
    queries: Option<mpsc::Sender<Query>>,
}

impl StateQueries {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Declares that `store` is served, with its keys partitioned as `routing` says.
    pub fn serve(&self, store: &str, routing: KeyRouting) {
        self.lock().stores.insert(store.to_string(), Some(routing));
    }

    /// Declares that `store` is not run by this service.
    pub fn switch_off(&self, store: &str) {
        self.lock().stores.insert(store.to_string(), None);
    }

    /// Registers the task that owns `partition` of `stores`, as restoring. The task stays
    /// registered until the returned handle drops, which the task does when it ends.
    pub fn register(self: &Arc<Self>, stores: &[&'static str], partition: i32) -> TaskRegistration {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        for store in stores {
            // A successor replaces a predecessor that has not noticed its revocation yet.
            let owner = Owner { id, queries: None };
            inner.tasks.insert((store.to_string(), partition), owner);
        }
        TaskRegistration {
            registry: self.clone(),
            stores: stores.to_vec(),
            partition,
            id,
        }
    }

    /// Looks `key` up in `store` wherever it lives.
    pub async fn query(&self, store: &str, key: &str) -> Result<Lookup, Unavailable> {
        let (partition, routing, owner) = {
            let inner = self.lock();
            let routing = match inner.stores.get(store) {
                None => return Err(Unavailable::Starting),
                Some(None) => return Err(Unavailable::Off),
                Some(Some(r)) => r.clone(),
            };
            let partition =
                partition_for((routing.partition_key)(key).as_bytes(), routing.partitions);
            let owner = inner
                .tasks
                .get(&(store.to_string(), partition))
                .map(|o| o.queries.clone());
            (partition, routing, owner)
        };
        let outcome = match owner {
            None => Outcome::Elsewhere,
            Some(None) => Outcome::Restoring,
            Some(Some(task)) => ask(&task, store, key).await,
        };
        Ok(Lookup {
            partition,
            routing,
            outcome,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every critical section leaves the maps consistent, so a panic elsewhere cannot
        // have left them half-written.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn ask(task: &mpsc::Sender<Query>, store: &str, key: &str) -> Outcome {
    let (reply, answer) = oneshot::channel();
    let query = Query {
        store: store.to_string(),
        key: key.to_string(),
        reply,
    };
    if task.send(query).await.is_err() {
        return Outcome::Unanswered;
    }
    match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Some(value))) => Outcome::Found(value),
        Ok(Ok(None)) => Outcome::Missing,
        Ok(Err(_)) | Err(_) => Outcome::Unanswered,
    }
}

/// A task's place in the registry; dropping it takes the task out.
pub struct TaskRegistration {
    registry: Arc<StateQueries>,
    stores: Vec<&'static str>,
    partition: i32,
    id: u64,
}

impl TaskRegistration {
    /// The task has restored its stores and answers `queries` from now on.
    pub fn ready(&self, queries: mpsc::Sender<Query>) {
        let mut inner = self.registry.lock();
        for store in &self.stores {
            if let Some(owner) = inner.tasks.get_mut(&(store.to_string(), self.partition)) {
                if owner.id == self.id {
                    owner.queries = Some(queries.clone());
                }
            }
        }
    }
}

impl Drop for TaskRegistration {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        for store in &self.stores {
            let key = (store.to_string(), self.partition);
            // Only our own entry: a successor may already own the partition.
            if inner.tasks.get(&key).is_some_and(|o| o.id == self.id) {
                inner.tasks.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> KeyRouting {
        KeyRouting {
            topic: "app-saga-triggers-repartition".into(),
            partitions: 3,
            group: "app".into(),
            partition_key: |k| k,
        }
    }

    /// A task that answers every query for `known` with `{"id": key}`.
    fn answering_task(known: &'static str) -> mpsc::Sender<Query> {
        let (tx, mut rx) = mpsc::channel::<Query>(4);
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let value = (q.key == known).then(|| serde_json::json!({ "id": q.key }));
                let _ = q.reply.send(value);
            }
        });
        tx
    }

    #[tokio::test]
    async fn a_store_that_is_off_or_not_set_up_yet_is_unavailable() {
        let queries = StateQueries::new();
        let err = queries.query("sagas", "s").await.unwrap_err();
        assert_eq!(err, Unavailable::Starting);
        queries.switch_off("sagas");
        let err = queries.query("sagas", "s").await.unwrap_err();
        assert_eq!(err, Unavailable::Off);
    }

    #[tokio::test]
    async fn the_owning_task_answers_and_other_partitions_are_elsewhere() {
        let queries = StateQueries::new();
        queries.serve("sagas", routing());
        let key = "checkout@2";
        let mine = partition_for(key.as_bytes(), 3);
        let registration = queries.register(&["sagas"], mine);
        let lookup = queries.query("sagas", key).await.unwrap();
        assert_eq!(lookup.outcome, Outcome::Restoring);
        assert_eq!(lookup.partition, mine);

        registration.ready(answering_task(key));
        let lookup = queries.query("sagas", key).await.unwrap();
        assert_eq!(
            lookup.outcome,
            Outcome::Found(serde_json::json!({ "id": key }))
        );
        assert_eq!(
            (lookup.routing.topic, lookup.routing.partitions),
            (routing().topic, routing().partitions)
        );

        // Another key of the same partition is simply missing there.
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|k| partition_for(k.as_bytes(), 3) == mine)
            .unwrap();
        assert_eq!(
            queries.query("sagas", &other).await.unwrap().outcome,
            Outcome::Missing
        );
        // A key of a partition with no task here lives on another instance.
        let elsewhere = (0..)
            .map(|i| format!("away-{i}"))
            .find(|k| partition_for(k.as_bytes(), 3) != mine)
            .unwrap();
        let lookup = queries.query("sagas", &elsewhere).await.unwrap();
        assert_eq!(lookup.outcome, Outcome::Elsewhere);
        assert_eq!(lookup.partition, partition_for(elsewhere.as_bytes(), 3));

        drop(registration);
        assert_eq!(
            queries.query("sagas", key).await.unwrap().outcome,
            Outcome::Elsewhere,
            "an ended task answers nothing"
        );
    }

    #[tokio::test]
    async fn a_predecessor_ending_late_leaves_its_successor_registered() {
        let queries = StateQueries::new();
        queries.serve("sagas", routing());
        let key = "checkout@2";
        let p = partition_for(key.as_bytes(), 3);
        let old = queries.register(&["sagas"], p);
        let new = queries.register(&["sagas"], p);
        new.ready(answering_task(key));
        old.ready(answering_task("nothing"));
        drop(old);
        let lookup = queries.query("sagas", key).await.unwrap();
        assert_eq!(
            lookup.outcome,
            Outcome::Found(serde_json::json!({ "id": key }))
        );
    }

    #[tokio::test]
    async fn a_task_that_stops_without_answering_is_unanswered() {
        let queries = StateQueries::new();
        queries.serve("sagas", routing());
        let key = "checkout@2";
        let registration = queries.register(&["sagas"], partition_for(key.as_bytes(), 3));
        let (tx, mut rx) = mpsc::channel::<Query>(1);
        tokio::spawn(async move { drop(rx.recv().await) });
        registration.ready(tx);
        let lookup = queries.query("sagas", key).await.unwrap();
        assert_eq!(lookup.outcome, Outcome::Unanswered);
    }
}
