//! The demo's agents on the embedded log: they read `orchestration.commands` and
//! `orchestration.compensations` like `aura agents` reads them on Kafka, and write each answer
//! to `agent.results` (a vote on a consensus ballot to `agent.votes`), keyed by the command's
//! `partition_key`, once its simulated latency has passed in virtual time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::codec::Codec;
use crate::config::TopicsConfig;
use crate::model::{AgentCommand, AgentResult, AgentVote, CompensationCommand};
use crate::runtime::{EmbeddedLog, OutputRecord};
use crate::sim::coordination::is_ballot;
use crate::sim::SimulatedAgents;

/// What an agent sends back: a result, or a vote on a ballot.
enum Answer {
    Result(AgentResult),
    Vote(AgentVote),
}

pub struct AgentsOnLog {
    agents: SimulatedAgents,
    commands: String,
    compensations: String,
    results: String,
    votes: String,
    /// Next offset to read per (topic, partition).
    read: HashMap<(String, i32), i64>,
    /// Answers waiting for their time: (due, sequence) -> (key, answer).
    due: BinaryHeap<Reverse<(i64, u64)>>,
    waiting: HashMap<u64, (String, Answer)>,
    seq: u64,
}

impl AgentsOnLog {
    pub fn new(agents: SimulatedAgents, topics: &TopicsConfig) -> Self {
        Self {
            agents,
            commands: topics.commands.clone(),
            compensations: topics.compensations.clone(),
            results: topics.agent_results.clone(),
            votes: topics.agent_votes.clone(),
            read: HashMap::new(),
            due: BinaryHeap::new(),
            waiting: HashMap::new(),
            seq: 0,
        }
    }

    /// Answers waiting to be delivered.
    pub fn pending(&self) -> usize {
        self.waiting.len()
    }

    /// When the next answer is due.
    pub fn next_due(&self) -> Option<i64> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Reads the commands and compensations written since the last call and draws an answer
    /// for each (or silence).
    pub async fn read_commands(
        &mut self,
        log: &EmbeddedLog,
        codec: &Codec,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        for topic in [self.commands.clone(), self.compensations.clone()] {
            for partition in 0..log.partitions(&topic) {
                let from = *self.read.get(&(topic.clone(), partition)).unwrap_or(&0);
                let records = log.read(&topic, partition, from, usize::MAX);
                for r in &records {
                    let bytes = r.value.as_deref().unwrap_or_default();
                    let answer = if topic == self.compensations {
                        let c: CompensationCommand = codec.decode(bytes).await?;
                        let key = c.partition_key.clone();
                        let answer = self.agents.compensate(&c, now_ms);
                        answer.map(|(at, r)| (key, (at, Answer::Result(r))))
                    } else {
                        let c: AgentCommand = codec.decode(bytes).await?;
                        let key = c.partition_key.clone();
                        let answer = if is_ballot(&c) {
                            let vote = self.agents.vote(&c, now_ms);
                            vote.map(|(at, v)| (at, Answer::Vote(v)))
                        } else {
                            let result = self.agents.answer(&c, now_ms);
                            result.map(|(at, r)| (at, Answer::Result(r)))
                        };
                        answer.map(|a| (key, a))
                    };
                    if let Some((key, (at, result))) = answer {
                        self.due.push(Reverse((at, self.seq)));
                        self.waiting.insert(self.seq, (key, result));
                        self.seq += 1;
                    }
                }
                self.read
                    .insert((topic.clone(), partition), from + records.len() as i64);
            }
        }
        Ok(())
    }

    /// Writes every answer due by `now_ms` to the results topic, and every vote to the votes
    /// topic.
    pub fn deliver_due(
        &mut self,
        log: &EmbeddedLog,
        codec: &Codec,
        now_ms: i64,
    ) -> anyhow::Result<()> {
        while let Some(Reverse((at, seq))) = self.due.peek().copied() {
            if at > now_ms {
                break;
            }
            self.due.pop();
            let (key, answer) = self.waiting.remove(&seq).expect("queued with its answer");
            let (topic, value) = match &answer {
                Answer::Result(r) => (&self.results, codec.encode(&self.results, r)?),
                Answer::Vote(v) => (&self.votes, codec.encode(&self.votes, v)?),
            };
            log.append(
                OutputRecord {
                    partition: None,
                    topic: topic.clone(),
                    key: Some(key.into_bytes()),
                    value: Some(value),
                    headers: vec![],
                },
                at,
            );
        }
        Ok(())
    }
}
