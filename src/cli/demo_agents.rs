//! The demo's agents on the embedded log: they read `orchestration.commands` and
//! `orchestration.compensations` like `aura agents` reads them on Kafka, and write each answer
//! to `agent.results`, keyed by the command's `partition_key`, once its simulated latency has
//! passed in virtual time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::codec::Codec;
use crate::config::TopicsConfig;
use crate::model::{AgentCommand, AgentResult, CompensationCommand};
use crate::runtime::{EmbeddedLog, OutputRecord};
use crate::sim::SimulatedAgents;

pub struct AgentsOnLog {
    agents: SimulatedAgents,
    commands: String,
    compensations: String,
    results: String,
    /// Next offset to read per (topic, partition).
    read: HashMap<(String, i32), i64>,
    /// Answers waiting for their time: (due, sequence) -> (key, result).
    due: BinaryHeap<Reverse<(i64, u64)>>,
    waiting: HashMap<u64, (String, AgentResult)>,
    seq: u64,
}

impl AgentsOnLog {
    pub fn new(agents: SimulatedAgents, topics: &TopicsConfig) -> Self {
        Self {
            agents,
            commands: topics.commands.clone(),
            compensations: topics.compensations.clone(),
            results: topics.agent_results.clone(),
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
                        self.agents.compensate(&c, now_ms).map(|a| (key, a))
                    } else {
                        let c: AgentCommand = codec.decode(bytes).await?;
                        let key = c.partition_key.clone();
                        self.agents.answer(&c, now_ms).map(|a| (key, a))
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

    /// Writes every answer due by `now_ms` to the results topic.
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
            let (key, result) = self.waiting.remove(&seq).expect("queued with its answer");
            log.append(
                OutputRecord {
                    partition: None,
                    topic: self.results.clone(),
                    key: Some(key.into_bytes()),
                    value: Some(codec.encode(&self.results, &result)?),
                    headers: vec![],
                },
                at,
            );
        }
        Ok(())
    }
}
