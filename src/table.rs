//! A keyed table built from a compacted topic (`tda.context`, `agent.registry`,
//! `orchestration.flags`).
//!
//! Tables are global, like Kafka Streams' `GlobalKTable`: every instance reads every
//! partition, because the streams that join them are not keyed the same way. Writers are the
//! table loaders; readers are processors, which only take a cheap `Arc` clone of a row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// Called with each applied change: the key and its new value (`None`: deleted).
pub type Listener<V> = Box<dyn Fn(&str, Option<&V>) + Send + Sync>;

/// Latest value per key; a tombstone (None) deletes the key.
pub struct Table<V> {
    rows: RwLock<HashMap<String, Arc<V>>>,
    restored: AtomicBool,
    /// Told of every change after it is applied: how a table's readers that keep their own
    /// view (the router's registry and flags) stay current.
    listener: Option<Listener<V>>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            rows: RwLock::new(HashMap::new()),
            restored: AtomicBool::new(false),
            listener: None,
        }
    }
}

impl<V> Table<V> {
    /// An empty table that tells `listener` of every change.
    pub fn with_listener(listener: Listener<V>) -> Self {
        Self {
            listener: Some(listener),
            ..Self::default()
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<V>> {
        self.rows
            .read()
            .expect("table lock poisoned")
            .get(key)
            .cloned()
    }

    /// Applies one changelog record: a value upserts, a tombstone deletes.
    pub fn apply(&self, key: String, value: Option<V>) {
        let value = value.map(Arc::new);
        {
            let mut rows = self.rows.write().expect("table lock poisoned");
            match &value {
                Some(v) => rows.insert(key.clone(), v.clone()),
                None => rows.remove(&key),
            };
        }
        if let Some(listener) = &self.listener {
            listener(&key, value.as_deref());
        }
    }

    pub fn len(&self) -> usize {
        self.rows.read().expect("table lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the loader has read up to the end of the topic as it was at start-up.
    pub fn is_restored(&self) -> bool {
        self.restored.load(Ordering::Acquire)
    }

    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_then_tombstone() {
        let t = Table::default();
        t.apply("a".into(), Some(1));
        t.apply("a".into(), Some(2));
        assert_eq!(t.get("a").as_deref(), Some(&2));
        t.apply("a".into(), None);
        assert!(t.get("a").is_none() && t.is_empty());
    }

    #[test]
    fn the_listener_hears_every_change_after_it_is_applied() {
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = Table::with_listener({
            let heard = heard.clone();
            Box::new(move |k: &str, v: Option<&i32>| {
                heard.lock().unwrap().push((k.to_string(), v.copied()))
            })
        });
        t.apply("a".into(), Some(1));
        t.apply("a".into(), None);
        assert_eq!(
            *heard.lock().unwrap(),
            vec![("a".to_string(), Some(1)), ("a".to_string(), None)]
        );
    }
}
