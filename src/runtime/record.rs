//! Records as the runtime moves them: the same shape for Kafka and the embedded log.

/// One consumed record with its coordinates.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's Kafka timestamp, milliseconds since the epoch.
    pub timestamp_ms: Option<i64>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl InputRecord {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputRecord {
    pub topic: String,
    /// The partition to write to; `None` lets the key choose (Kafka's default partitioner).
    /// A store's changelog record goes to its task's partition, whatever its key hashes to,
    /// as in Kafka Streams: the task restores exactly that partition.
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    /// `None` is a tombstone (a deletion on a compacted topic).
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}
