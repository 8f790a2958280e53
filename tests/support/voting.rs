//! Voting as the agents of a test: read each saga's ballots from the commands topic, cast votes
//! on the votes topic keyed like an agent keys them, and read the decisions back. Every read is
//! read_committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{AgentCommand, AgentVote, ConsensusDecision, Coordination};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::common::{bootstrap, committed_reader, decode_topic, registry};

/// Casts votes on `agent.votes` as an agent would: keyed by the ballot's `partition_key`, with
/// Kafka's default (murmur2) partitioner, so each vote reaches the saga's partition.
pub struct Voter {
    producer: FutureProducer,
    codec: Codec,
    topic: String,
}

impl Voter {
    pub async fn new(topic: &str) -> Self {
        let codec = Codec::with_registry(&registry(), &[(topic, "aura.v1.AgentVote")])
            .await
            .unwrap();
        let producer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap())
            .set("partitioner", "murmur2_random")
            .create()
            .unwrap();
        Self {
            producer,
            codec,
            topic: topic.to_string(),
        }
    }

    pub async fn send(&self, key: &str, vote: &AgentVote) {
        let value = self.codec.encode(&self.topic, vote).unwrap();
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    /// `agent` votes `choice` on `ballot`.
    pub async fn cast(&self, ballot: &AgentCommand, agent: &str, choice: &str) {
        self.send(&ballot.partition_key, &vote(ballot, agent, choice))
            .await;
    }
}

pub fn vote(ballot: &AgentCommand, agent: &str, choice: &str) -> AgentVote {
    AgentVote {
        vote_id: ballot.command_id.clone(),
        saga_id: ballot.saga_id.clone(),
        step: ballot.step.clone(),
        agent_id: agent.to_string(),
        agent_type: ballot.agent_type,
        choice: choice.to_string(),
        weight: 1.0,
        reason: "cast by tests/consensus.rs".into(),
        cast_at: aura::clock::now_ms(),
        proof: None,
    }
}

/// Each saga's three ballots (in ballot order), once `sagas` sagas have sent theirs.
pub async fn ballots(
    topic: &str,
    sagas: usize,
    action: &str,
) -> BTreeMap<String, Vec<AgentCommand>> {
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    let consumer = committed_reader(topic);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut by_saga: BTreeMap<String, Vec<AgentCommand>> = BTreeMap::new();
    let complete = |m: &BTreeMap<String, Vec<AgentCommand>>| {
        m.len() >= sagas && m.values().all(|b| b.len() == 3)
    };
    while !complete(&by_saga) {
        assert!(
            Instant::now() < deadline,
            "ballots of {} sagas seen",
            by_saga.len()
        );
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let c: AgentCommand = codec.decode(m.payload().unwrap()).await.unwrap();
        if c.coordination == Coordination::Consensus && c.action == action {
            by_saga.entry(c.saga_id.clone()).or_default().push(c);
        }
    }
    consumer.unsubscribe();
    for b in by_saga.values_mut() {
        b.sort_by(|x, y| x.command_id.cmp(&y.command_id));
    }
    by_saga
}

/// Decisions by saga, read until at least `min` came and the topic was quiet, so a decision
/// written twice would show.
pub async fn decisions(topic: &str, min: usize) -> BTreeMap<String, Vec<ConsensusDecision>> {
    let mut by_saga: BTreeMap<String, Vec<ConsensusDecision>> = BTreeMap::new();
    for d in decode_topic::<ConsensusDecision>(topic, min).await {
        by_saga.entry(d.saga_id.clone()).or_default().push(d);
    }
    by_saga
}
