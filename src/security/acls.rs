//! The Kafka ACLs a deployment needs, derived from the topology declaration
//! ([`crate::topology::Topology`]) rather than written out by hand, so a new input or output
//! cannot be forgotten: `aura topology acls` prints them, `deploy/kafka-acls.sh` applies them,
//! and the start-up check ([`super::preflight`]) checks the topics they name.
//!
//! Least privilege, per principal:
//! - `aura`: Read on each topic the topology reads, Write on each it writes, and Describe, Create
//!   and DescribeConfigs on every named topic (it makes sure each exists, with the partitions
//!   and compaction it needs, even those it neither reads nor writes in this configuration).
//!   Its internal topics (changelogs, the repartition topic), consumer groups and
//!   transactional ids all start with its `group.id`, and are granted by that prefix, as
//!   Kafka Streams' are by `application.id`.
//! - `agent`: reads commands and compensations in its own group, writes results and votes, and
//!   registers itself on the registry table.
//! - `tda`: writes anomalies and their context.
//!
//! Who writes `flags` and `feedback` (operators, a review tool) is not one of these principals;
//! grant that principal Write on them where it runs.

use std::fmt;

use crate::config::Config;
use crate::topology::Topology;

/// The principals and the agents' consumer group the rules are written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principals {
    pub aura: String,
    pub agent: String,
    pub tda: String,
    /// `aura agents --group-id`, granted by prefix (each agent pool may add a suffix).
    pub agents_group: String,
}

impl Default for Principals {
    fn default() -> Self {
        Self {
            aura: "User:aura".into(),
            agent: "User:agent".into(),
            tda: "User:tda".into(),
            agents_group: "aura-agents".into(),
        }
    }
}

/// A Kafka ACL operation, spelled as `kafka-acls.sh --operation` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Read,
    Write,
    Describe,
    Create,
    DescribeConfigs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Group,
    TransactionalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Literal,
    Prefixed,
}

/// One allow rule: `principal` may do `operations` on the resource `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub principal: String,
    pub operations: Vec<Operation>,
    pub resource: Resource,
    pub pattern: Pattern,
    pub name: String,
}

/// Every rule the configured topology needs, `aura`'s first.
pub fn rules(config: &Config, principals: &Principals) -> Vec<Acl> {
    use Operation::*;
    let topology = Topology::new(config);
    let internal = format!("{}-", config.kafka.group_id);
    let t = &config.topics;

    // aura: every named topic exists because aura makes sure of it; the topology says which
    // of them it reads and writes.
    let mut topics: Vec<(String, Vec<Operation>)> = Vec::new();
    let mut grant = |topic: &str, op: Operation| {
        if topic.starts_with(&internal) {
            return; // covered by the internal prefix below
        }
        match topics.iter_mut().find(|(name, _)| name == topic) {
            Some((_, ops)) if !ops.contains(&op) => ops.push(op),
            Some(_) => {}
            None => topics.push((topic.to_owned(), vec![op])),
        }
    };
    for input in &topology.inputs {
        grant(&input.topic, Read);
    }
    for output in &topology.outputs {
        grant(&output.topic, Write);
    }
    for (_, topic) in t.all() {
        for op in [Describe, Create, DescribeConfigs] {
            grant(topic, op);
        }
    }
    let aura = &principals.aura;
    let mut rules: Vec<Acl> = topics
        .into_iter()
        .map(|(name, mut ops)| {
            ops.sort();
            acl(aura, ops, Resource::Topic, Pattern::Literal, name)
        })
        .collect();
    rules.extend([
        acl(
            aura,
            vec![Read, Write, Describe, Create, DescribeConfigs],
            Resource::Topic,
            Pattern::Prefixed,
            internal.clone(),
        ),
        // <group.id> itself and its table and restore readers (<group.id>-tables, -restore).
        acl(
            aura,
            vec![Read, Describe],
            Resource::Group,
            Pattern::Prefixed,
            config.kafka.group_id.clone(),
        ),
        // <group.id>-<instance>-<slot>, and the start-up check's <group.id>-<instance>-acl-check.
        acl(
            aura,
            vec![Write, Describe],
            Resource::TransactionalId,
            Pattern::Prefixed,
            internal,
        ),
    ]);

    let agent = &principals.agent;
    for topic in [&t.commands, &t.compensations] {
        rules.push(topic_acl(agent, vec![Read, Describe], topic));
    }
    for topic in [&t.agent_results, &t.agent_votes, &t.registry] {
        rules.push(topic_acl(agent, vec![Write, Describe], topic));
    }
    rules.push(acl(
        agent,
        vec![Read, Describe],
        Resource::Group,
        Pattern::Prefixed,
        principals.agents_group.clone(),
    ));

    for topic in [&t.anomalies, &t.context] {
        rules.push(topic_acl(&principals.tda, vec![Write, Describe], topic));
    }
    rules
}

/// The topics `aura`'s rules name one by one, then the internal topics the topology declares
/// (they are granted by prefix): the ones the start-up check describes.
pub fn aura_topics(config: &Config, principals: &Principals) -> Vec<String> {
    let topology = Topology::new(config);
    let mut topics: Vec<String> = rules(config, principals)
        .into_iter()
        .filter(|a| {
            a.principal == principals.aura
                && a.resource == Resource::Topic
                && a.pattern == Pattern::Literal
        })
        .map(|a| a.name)
        .collect();
    topics.extend(topology.changelogs());
    topics.extend(
        topology
            .global_stores
            .iter()
            .map(|s| topology.internal.changelog(s)),
    );
    topics.push(topology.internal.rekey.clone());
    topics
}

fn topic_acl(principal: &str, operations: Vec<Operation>, topic: &str) -> Acl {
    acl(
        principal,
        operations,
        Resource::Topic,
        Pattern::Literal,
        topic.to_owned(),
    )
}

fn acl(
    principal: &str,
    operations: Vec<Operation>,
    resource: Resource,
    pattern: Pattern,
    name: String,
) -> Acl {
    Acl {
        principal: principal.to_owned(),
        operations,
        resource,
        pattern,
        name,
    }
}

/// The rules as `deploy/kafka-acls.sh` reads them: a comment header, then one rule a line,
/// `PRINCIPAL OPERATION[,OPERATION...] topic|group|transactional-id literal|prefixed NAME`.
pub fn render(rules: &[Acl], source: &str) -> String {
    let mut s = format!(
        "# Kafka ACLs for Aura Orchestrator, printed by `aura topology acls` from the topology of {source}.\n\
         # Apply them with deploy/kafka-acls.sh. One allow rule a line:\n\
         # PRINCIPAL OPERATIONS RESOURCE-TYPE PATTERN-TYPE NAME\n"
    );
    for rule in rules {
        s.push_str(&format!("{rule}\n"));
    }
    s
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ops: Vec<String> = self.operations.iter().map(|o| format!("{o:?}")).collect();
        let resource = match self.resource {
            Resource::Topic => "topic",
            Resource::Group => "group",
            Resource::TransactionalId => "transactional-id",
        };
        let pattern = match self.pattern {
            Pattern::Literal => "literal",
            Pattern::Prefixed => "prefixed",
        };
        write!(
            f,
            "{} {} {resource} {pattern} {}",
            self.principal,
            ops.join(","),
            self.name
        )
    }
}

#[cfg(test)]
#[path = "acls_tests.rs"]
mod tests;
