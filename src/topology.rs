//! The service's topology, declared once: every input topic (what it carries, how it is read)
//! and every output topic (which [`Output`] goes there, with which schema).
//!
//! Decoding, encoding, the schemas registered at start-up, the topics created, the embedded
//! runtime and `aura topology graph` all read this declaration, so adding an input or an
//! output is a change here plus the processor that uses it.

use std::fmt::Write;

use crate::config::{Config, InternalTopics};
use crate::processor::{Output, INCIDENT_STORE, SAGA_STORE};
use crate::semantic::learned::PATTERNS_STORE;

/// What an input topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `TdaAnomaly` records from the TDA producer.
    Anomalies,
    /// `TdaAnomaly` records re-keyed by correlation key (internal).
    Rekeyed,
    /// `AgentResult` records.
    AgentResults,
    /// `AgentVote` records for consensus steps, keyed and partitioned like results.
    AgentVotes,
    /// `TdaContext` rows, a table every instance reads in full.
    Context,
    /// `AgentRegistration` rows: the live agent registry, a table.
    Registry,
    /// `FeatureFlag` rows, a table.
    Flags,
    /// `RoutingFeedback` records, read by the learner's own sub-topology.
    Feedback,
}

/// How an input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Partitioned across the group, in offset order per partition, offsets committed with the
    /// outputs.
    Stream,
    /// Read in full by every instance and kept current (a `GlobalKTable`).
    Table,
}

/// Where an output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    Command,
    Correlation,
    Rekeyed,
    SagaEvent,
    Compensation,
    Escalation,
    Decision,
    DeadLetter,
}

impl OutputKind {
    pub fn of(output: &Output) -> Option<Self> {
        Some(match output {
            Output::Command(_) => Self::Command,
            Output::Correlation(_) => Self::Correlation,
            Output::Rekeyed(_) => Self::Rekeyed,
            Output::SagaEvent(_) => Self::SagaEvent,
            Output::Compensation(_) => Self::Compensation,
            Output::Escalation(_) => Self::Escalation,
            Output::Decision(_) => Self::Decision,
            Output::State { .. } | Output::GlobalState { .. } | Output::Trace(_) => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    pub input: Input,
    pub topic: String,
    /// The reader schema's full name.
    pub schema: &'static str,
    pub reading: Reading,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputDecl {
    pub kind: OutputKind,
    pub topic: String,
    /// The writer schema's full name, registered under `<topic>-value`.
    pub schema: &'static str,
}

/// Every topic the service reads and writes, and its stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub inputs: Vec<InputDecl>,
    pub outputs: Vec<OutputDecl>,
    /// Stores of the incident tasks, each with a changelog `<group.id>-<store>-changelog`.
    pub stores: Vec<&'static str>,
    /// Global stores: every instance restores their changelog in full before processing and
    /// follows it (the learned patterns).
    pub global_stores: Vec<&'static str>,
    pub internal: InternalTopics,
    pub sagas: bool,
}

impl Topology {
    pub fn new(config: &Config) -> Self {
        let t = &config.topics;
        let internal = InternalTopics::new(&config.kafka.group_id);
        let sagas = config.sagas.enabled;
        let input = |input, topic: &str, schema, reading| InputDecl {
            input,
            topic: topic.to_string(),
            schema,
            reading,
        };
        let mut inputs = vec![
            input(
                Input::Anomalies,
                &t.anomalies,
                "aura.v1.TdaAnomaly",
                Reading::Stream,
            ),
            input(
                Input::Rekeyed,
                &internal.rekey,
                "aura.v1.TdaAnomaly",
                Reading::Stream,
            ),
            input(
                Input::Context,
                &t.context,
                "aura.v1.TdaContext",
                Reading::Table,
            ),
            input(
                Input::Registry,
                &t.registry,
                "aura.v1.AgentRegistration",
                Reading::Table,
            ),
            input(
                Input::Flags,
                &t.flags,
                "aura.v1.FeatureFlag",
                Reading::Table,
            ),
            input(
                Input::Feedback,
                &t.feedback,
                "aura.v1.RoutingFeedback",
                Reading::Stream,
            ),
        ];
        let output = |kind, topic: &str, schema| OutputDecl {
            kind,
            topic: topic.to_string(),
            schema,
        };
        let mut outputs = vec![
            output(OutputKind::Command, &t.commands, "aura.v1.AgentCommand"),
            output(
                OutputKind::Correlation,
                &t.correlations,
                "aura.v1.CorrelationEvent",
            ),
            output(OutputKind::Rekeyed, &internal.rekey, "aura.v1.TdaAnomaly"),
            output(
                OutputKind::DeadLetter,
                &t.dead_letters,
                "aura.v1.DeadLetter",
            ),
        ];
        let mut stores = vec![INCIDENT_STORE];
        if sagas {
            inputs.push(input(
                Input::AgentResults,
                &t.agent_results,
                "aura.v1.AgentResult",
                Reading::Stream,
            ));
            inputs.push(input(
                Input::AgentVotes,
                &t.agent_votes,
                "aura.v1.AgentVote",
                Reading::Stream,
            ));
            outputs.extend([
                output(OutputKind::SagaEvent, &t.sagas, "aura.v1.SagaEvent"),
                output(
                    OutputKind::Compensation,
                    &t.compensations,
                    "aura.v1.CompensationCommand",
                ),
                output(OutputKind::Escalation, &t.escalations, "aura.v1.Escalation"),
                output(
                    OutputKind::Decision,
                    &t.decisions,
                    "aura.v1.ConsensusDecision",
                ),
            ]);
            stores.push(SAGA_STORE);
        }
        Self {
            inputs,
            outputs,
            stores,
            global_stores: vec![PATTERNS_STORE],
            internal,
            sagas,
        }
    }

    /// What `topic` carries, when the topology reads it.
    pub fn input(&self, topic: &str) -> Option<&InputDecl> {
        self.inputs.iter().find(|i| i.topic == topic)
    }

    /// The stream inputs the incident tasks read besides anomalies: the re-key topic, and with
    /// sagas the agents' results and votes (all co-partitioned, docs/KEYS.md).
    pub fn incident_inputs(&self) -> Vec<String> {
        self.inputs
            .iter()
            .filter(|i| {
                matches!(
                    i.input,
                    Input::Rekeyed | Input::AgentResults | Input::AgentVotes
                )
            })
            .map(|i| i.topic.clone())
            .collect()
    }

    /// The topic of an input kind.
    pub fn input_topic(&self, input: Input) -> &str {
        &self
            .inputs
            .iter()
            .find(|i| i.input == input)
            .expect("every input kind the service reads is declared")
            .topic
    }

    /// The topic an output goes to.
    pub fn topic(&self, kind: OutputKind) -> &str {
        &self
            .outputs
            .iter()
            .find(|o| o.kind == kind)
            .expect("every output kind a processor emits is declared")
            .topic
    }

    /// `(topic, schema)` of every output, for registering writer schemas.
    pub fn writes(&self) -> Vec<(&str, &str)> {
        self.outputs
            .iter()
            .map(|o| (o.topic.as_str(), o.schema))
            .collect()
    }

    /// The changelog topic of each store.
    pub fn changelogs(&self) -> Vec<String> {
        self.stores
            .iter()
            .map(|s| self.internal.changelog(s))
            .collect()
    }

    /// The topology as a Graphviz digraph: inputs, the incident task with its stores, outputs.
    pub fn dot(&self) -> String {
        let mut s =
            String::from("digraph aura {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
        let task = "incident task\\n(validate, enrich, score, route,\\ncorrelate, saga)";
        let _ = writeln!(s, "  task [shape=box, style=rounded, label=\"{task}\"];");
        let _ = writeln!(
            s,
            "  learner [shape=box, style=rounded, label=\"learner\\n(feedback → pattern library)\"];"
        );
        for store in &self.global_stores {
            let changelog = self.internal.changelog(store);
            let _ = writeln!(
                s,
                "  \"global:{store}\" [shape=folder, label=\"{store} (global)\\n{changelog}\"];\n  learner -> \"global:{store}\";\n  \"global:{store}\" -> task [style=dashed, label=\"every instance\"];"
            );
        }
        for i in &self.inputs {
            if i.input == Input::Feedback {
                let _ = writeln!(
                    s,
                    "  \"{}\" [shape=cds, label=\"{}\\n{}\"];\n  \"{}\" -> learner;",
                    i.topic, i.topic, i.schema, i.topic
                );
                continue;
            }
            let shape = match i.reading {
                Reading::Stream => "cds",
                Reading::Table => "cylinder",
            };
            let _ = writeln!(
                s,
                "  \"{}\" [shape={shape}, label=\"{}\\n{}\"];",
                i.topic, i.topic, i.schema
            );
            let style = if i.reading == Reading::Table {
                " [style=dashed, label=\"lookup\"]"
            } else {
                ""
            };
            let _ = writeln!(s, "  \"{}\" -> task{style};", i.topic);
        }
        for store in &self.stores {
            let changelog = self.internal.changelog(store);
            let _ = writeln!(
                s,
                "  \"store:{store}\" [shape=folder, label=\"{store} store\\n{changelog}\"];\n  task -> \"store:{store}\" [dir=both];"
            );
        }
        for o in &self.outputs {
            if o.kind == OutputKind::Rekeyed {
                let _ = writeln!(s, "  task -> \"{}\" [label=\"key not at home\"];", o.topic);
                continue;
            }
            let _ = writeln!(
                s,
                "  \"{}\" [shape=cds, label=\"{}\\n{}\"];\n  task -> \"{}\";",
                o.topic, o.topic, o.schema, o.topic
            );
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_kind_has_one_topic_and_every_input_is_found_by_topic() {
        let topology = Topology::new(&Config::default());
        for kind in [
            OutputKind::Command,
            OutputKind::Correlation,
            OutputKind::Rekeyed,
            OutputKind::SagaEvent,
            OutputKind::Compensation,
            OutputKind::Escalation,
            OutputKind::Decision,
            OutputKind::DeadLetter,
        ] {
            assert_eq!(
                topology.outputs.iter().filter(|o| o.kind == kind).count(),
                1
            );
        }
        assert_eq!(
            topology.input("agent.results").map(|i| i.input),
            Some(Input::AgentResults)
        );
        assert_eq!(
            topology.input("agent.votes").map(|i| i.input),
            Some(Input::AgentVotes)
        );
        assert_eq!(
            topology.topic(OutputKind::Decision),
            "orchestration.decisions"
        );
        assert_eq!(
            topology.incident_inputs(),
            vec!["aura-anomalies-repartition", "agent.results", "agent.votes"]
        );
        assert_eq!(
            topology
                .input("aura-anomalies-repartition")
                .map(|i| i.input),
            Some(Input::Rekeyed)
        );
        assert_eq!(
            topology.changelogs(),
            vec!["aura-incidents-changelog", "aura-sagas-changelog"]
        );
    }

    #[test]
    fn with_sagas_off_nothing_saga_related_is_read_or_written() {
        let mut config = Config::default();
        config.sagas.enabled = false;
        let topology = Topology::new(&config);
        assert!(topology.input("agent.results").is_none());
        assert!(topology.input("agent.votes").is_none());
        assert_eq!(
            topology.incident_inputs(),
            vec!["aura-anomalies-repartition"]
        );
        assert!(topology
            .outputs
            .iter()
            .all(|o| o.kind != OutputKind::SagaEvent));
        assert_eq!(topology.stores, vec![INCIDENT_STORE]);
    }

    #[test]
    fn the_graph_names_every_topic() {
        let topology = Topology::new(&Config::default());
        let dot = topology.dot();
        for topic in topology
            .inputs
            .iter()
            .map(|i| &i.topic)
            .chain(topology.outputs.iter().map(|o| &o.topic))
        {
            assert!(dot.contains(topic.as_str()), "{topic} missing from\n{dot}");
        }
    }
}
