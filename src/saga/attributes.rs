//! A saga's copy of its incident's attributes, kept compact: sagas hold them for their whole
//! life, a hundred thousand at a time, and a hash map of a handful of entries costs several
//! times their bytes. On the changelog they are the same JSON object a map would be.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Attribute pairs sorted by key, each string allocated to its exact length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(Vec<(Box<str>, Box<str>)>);

impl Attributes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// The attributes as the Avro records carry them.
    pub fn to_map(&self) -> HashMap<String, String> {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Heap bytes held, for the memory estimate.
    pub fn heap_bytes(&self) -> usize {
        self.0.capacity() * std::mem::size_of::<(Box<str>, Box<str>)>()
            + self.0.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
    }
}

impl From<HashMap<String, String>> for Attributes {
    fn from(map: HashMap<String, String>) -> Self {
        let mut pairs: Vec<(Box<str>, Box<str>)> = map
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
            .collect();
        pairs.sort_unstable();
        pairs.shrink_to_fit();
        Self(pairs)
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (&**k, &**v)))
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        HashMap::<String, String>::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_a_json_object_and_read_back_sorted() {
        let map: HashMap<String, String> = [("source", "svc-1"), ("archetype", "memory-leak")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let attributes = Attributes::from(map.clone());
        let json = serde_json::to_string(&attributes).unwrap();
        assert_eq!(json, r#"{"archetype":"memory-leak","source":"svc-1"}"#);
        let back: Attributes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attributes);
        assert_eq!(back.to_map(), map);
        assert_eq!(back.get("source"), Some("svc-1"));
        assert_eq!(back.get("missing"), None);
    }
}
