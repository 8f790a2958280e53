//! A consumer group's lag as the broker sees it: each partition's committed offset (the group's
//! OffsetFetch), its end offset (the high watermark, as `kafka-consumer-groups --describe` reads
//! it) and the difference, plus which member owns the partition now. Nothing here joins the
//! group, so reading the lag never triggers a rebalance, and it works when every instance of the
//! group is down, which is when lag matters most.

mod assignment;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

use crate::config::KafkaConfig;

/// One partition of the group, like a line of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset; `None` when it has none for this partition yet.
    pub committed: Option<i64>,
    /// The partition's end offset (high watermark).
    pub end: i64,
    /// `end - committed`; `None` without a committed offset.
    pub lag: Option<i64>,
    /// The member that owns the partition now (`client.id@host`); `None` when nobody does.
    pub owner: Option<String>,
}

/// The group's state and its partitions, sorted by topic and partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub group: String,
    /// The coordinator's word for it: `Stable`, `Empty`, `PreparingRebalance`, `Dead`, ...
    pub state: String,
    pub members: usize,
    pub partitions: Vec<PartitionLag>,
}

/// The source is boxed: rdkafka's error is large, and these travel through every `?`.
#[derive(Debug, thiserror::Error)]
pub enum LagError {
    #[error("cannot create a Kafka client for {bootstrap}")]
    Client {
        bootstrap: String,
        #[source]
        source: Box<KafkaError>,
    },
    #[error("cannot read {what} from the brokers at {bootstrap} within {timeout_ms} ms")]
    Broker {
        what: &'static str,
        bootstrap: String,
        timeout_ms: u64,
        #[source]
        source: Box<KafkaError>,
    },
}

/// Reads group lag with one client, reused across refreshes (`--watch`, `--serve`).
pub struct LagReader {
    consumer: BaseConsumer,
    group: String,
    bootstrap: String,
    /// Only these topics; every non-internal topic when empty.
    topics: Vec<String>,
    timeout: Duration,
}

impl LagReader {
    /// `kafka` gives the brokers and the security settings (`[kafka.properties]`,
    /// `[kafka.secrets]`, `AURA_KAFKA_*`), applied as for every Aura client.
    pub fn new(
        kafka: &KafkaConfig,
        group: &str,
        topics: Vec<String>,
        timeout: Duration,
    ) -> Result<Self, LagError> {
        let bootstrap = kafka.bootstrap_servers.as_str();
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            // OffsetFetch is sent for this group id; the client never subscribes, so it never
            // joins the group.
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            // The high watermark, as Kafka's own tool reports LOG-END-OFFSET.
            .set("isolation.level", "read_uncommitted")
            .set("client.id", format!("aura-lag-{group}"));
        // The user's and the environment's settings go last, so they override ours.
        crate::security::kafka::apply(kafka, &mut config);
        let consumer = config.create().map_err(|source| LagError::Client {
            bootstrap: bootstrap.into(),
            source: Box::new(source),
        })?;
        Ok(Self {
            consumer,
            group: group.into(),
            bootstrap: bootstrap.into(),
            topics,
            timeout,
        })
    }

    fn broker_error(&self, what: &'static str) -> impl FnOnce(KafkaError) -> LagError + '_ {
        move |source| LagError::Broker {
            what,
            bootstrap: self.bootstrap.clone(),
            timeout_ms: self.timeout.as_millis() as u64,
            source: Box::new(source),
        }
    }

    /// Blocking: a few broker round trips plus one per partition for its end offset. Call it
    /// from `spawn_blocking` in async code.
    pub fn read(&self) -> Result<GroupLag, LagError> {
        let groups = self
            .consumer
            .fetch_group_list(Some(&self.group), self.timeout)
            .map_err(self.broker_error("the group's members"))?;
        let (state, members, owners) = match groups.groups().first() {
            Some(g) => (g.state().to_string(), g.members().len(), owners(g)),
            None => ("Dead".to_string(), 0, BTreeMap::new()),
        };

        let metadata = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(self.broker_error("topic metadata"))?;
        let mut candidates = TopicPartitionList::new();
        for topic in metadata.topics() {
            let name = topic.name();
            let wanted = if self.topics.is_empty() {
                !name.starts_with("__")
            } else {
                self.topics.iter().any(|t| t == name)
            };
            if wanted {
                for p in topic.partitions() {
                    candidates.add_partition(name, p.id());
                }
            }
        }
        let committed = self.committed_offsets(candidates)?;

        let mut partitions = Vec::new();
        for element in committed.elements() {
            let key = (element.topic().to_string(), element.partition());
            let committed = match element.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            };
            let owner = owners.get(&key).cloned();
            // Like `kafka-consumer-groups --describe`: partitions the group has committed to or
            // owns; the rest of the cluster's topics are not the group's.
            if committed.is_none() && owner.is_none() {
                continue;
            }
            let (_, end) = self
                .consumer
                .fetch_watermarks(&key.0, key.1, self.timeout)
                .map_err(self.broker_error("a partition's end offset"))?;
            partitions.push(PartitionLag {
                lag: committed.map(|c| (end - c).max(0)),
                topic: key.0,
                partition: key.1,
                committed,
                end,
                owner,
            });
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(GroupLag {
            group: self.group.clone(),
            state,
            members,
            partitions,
        })
    }
}

impl LagReader {
    /// OffsetFetch, retried while the group's coordinator is being found or loaded: a group
    /// the broker has not seen yet answers NOT_COORDINATOR at first.
    fn committed_offsets(
        &self,
        partitions: TopicPartitionList,
    ) -> Result<TopicPartitionList, LagError> {
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self
                .consumer
                .committed_offsets(partitions.clone(), self.timeout)
            {
                Err(e) if coordinator_moving(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                result => {
                    return result.map_err(self.broker_error("the group's committed offsets"))
                }
            }
        }
    }
}

fn coordinator_moving(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode::*;
    matches!(
        e.rdkafka_error_code(),
        Some(NotCoordinator | CoordinatorLoadInProgress | CoordinatorNotAvailable)
    )
}

/// Which member owns each partition, from the members' assignments (classic protocol).
fn owners(group: &rdkafka::groups::GroupInfo) -> BTreeMap<(String, i32), String> {
    let mut owners = BTreeMap::new();
    for member in group.members() {
        let owned = member
            .assignment()
            .and_then(assignment::decode)
            .unwrap_or_default();
        let name = format!("{}@{}", member.client_id(), member.client_host());
        for key in owned {
            owners.insert(key, name.clone());
        }
    }
    owners
}
