use super::*;
use crate::topology::Topology;

fn ops_on(rules: &[Acl], principal: &str, topic: &str) -> Vec<Operation> {
    rules
        .iter()
        .filter(|a| a.principal == principal && a.resource == Resource::Topic && a.name == topic)
        .flat_map(|a| a.operations.clone())
        .collect()
}

#[test]
fn aura_reads_exactly_the_topologys_inputs_and_writes_exactly_its_outputs() {
    let config = Config::default();
    let topology = Topology::new(&config);
    let p = Principals::default();
    let rules = rules(&config, &p);
    let internal = format!("{}-", config.kafka.group_id);
    for input in topology
        .inputs
        .iter()
        .filter(|i| !i.topic.starts_with(&internal))
    {
        assert!(
            ops_on(&rules, &p.aura, &input.topic).contains(&Operation::Read),
            "no Read on input {}",
            input.topic
        );
    }
    for output in topology
        .outputs
        .iter()
        .filter(|o| !o.topic.starts_with(&internal))
    {
        assert!(
            ops_on(&rules, &p.aura, &output.topic).contains(&Operation::Write),
            "no Write on output {}",
            output.topic
        );
    }
    for (_, topic) in config.topics.all() {
        let ops = ops_on(&rules, &p.aura, topic);
        assert_eq!(
            ops.contains(&Operation::Read),
            topology.input(topic).is_some(),
            "Read on {topic}: {ops:?}"
        );
        assert_eq!(
            ops.contains(&Operation::Write),
            topology.outputs.iter().any(|o| o.topic == topic),
            "Write on {topic}: {ops:?}"
        );
        for op in [
            Operation::Describe,
            Operation::Create,
            Operation::DescribeConfigs,
        ] {
            assert!(ops.contains(&op), "{op:?} on {topic}: {ops:?}");
        }
    }
    // The control-plane topics that joined the topology are among them.
    for topic in [
        "agent.registry",
        "orchestration.flags",
        "orchestration.feedback",
    ] {
        assert!(ops_on(&rules, &p.aura, topic).contains(&Operation::Read));
    }
    assert!(ops_on(&rules, &p.aura, "orchestration.correlations").contains(&Operation::Write));
    // Internal topics, groups and transactional ids by the group.id prefix.
    for (resource, name) in [
        (Resource::Topic, "aura-"),
        (Resource::Group, "aura"),
        (Resource::TransactionalId, "aura-"),
    ] {
        assert!(
            rules.iter().any(|a| a.principal == p.aura
                && a.resource == resource
                && a.pattern == Pattern::Prefixed
                && a.name == name),
            "{resource:?} {name}"
        );
    }
}

#[test]
fn with_sagas_off_aura_may_create_the_saga_topics_but_not_read_or_write_them() {
    let mut config = Config::default();
    config.sagas.enabled = false;
    let p = Principals::default();
    let rules = rules(&config, &p);
    let results = ops_on(&rules, &p.aura, "agent.results");
    assert!(!results.contains(&Operation::Read), "{results:?}");
    assert!(results.contains(&Operation::Create));
    let sagas = ops_on(&rules, &p.aura, "orchestration.sagas");
    assert!(!sagas.contains(&Operation::Write), "{sagas:?}");
}

#[test]
fn agents_and_tda_get_only_their_side_of_the_contract() {
    let mut config = Config::default();
    config.topics.commands = "ops.commands".into();
    config.topics.agent_results = "ops.results".into();
    let p = Principals {
        agent: "User:pool".into(),
        agents_group: "pool".into(),
        ..Principals::default()
    };
    let rules = rules(&config, &p);
    assert_eq!(
        ops_on(&rules, &p.agent, "ops.commands"),
        vec![Operation::Read, Operation::Describe]
    );
    assert_eq!(
        ops_on(&rules, &p.agent, "ops.results"),
        vec![Operation::Write, Operation::Describe]
    );
    for topic in ["agent.votes", "agent.registry"] {
        assert_eq!(
            ops_on(&rules, &p.agent, topic),
            vec![Operation::Write, Operation::Describe]
        );
    }
    assert!(ops_on(&rules, &p.agent, "orchestration.sagas").is_empty());
    assert!(rules
        .iter()
        .any(|a| a.principal == "User:pool" && a.resource == Resource::Group && a.name == "pool"));
    assert_eq!(
        ops_on(&rules, &p.tda, "tda.anomalies"),
        vec![Operation::Write, Operation::Describe]
    );
    let tda_topics: Vec<_> = rules
        .iter()
        .filter(|a| a.principal == p.tda)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(tda_topics, vec!["tda.anomalies", "tda.context"]);
}

#[test]
fn the_start_up_check_describes_every_named_and_internal_topic() {
    let config = Config::default();
    let topics = aura_topics(&config, &Principals::default());
    for (_, topic) in config.topics.all() {
        assert!(topics.iter().any(|t| t == topic), "{topic}");
    }
    for internal in [
        "aura-incidents-changelog",
        "aura-sagas-changelog",
        "aura-patterns-changelog",
        "aura-anomalies-repartition",
    ] {
        assert!(topics.iter().any(|t| t == internal), "{internal}");
    }
}

/// deploy/kafka-acls.rules is what deploy/kafka-acls.sh applies when no `aura` binary is at
/// hand (the test stack starts before the build): it must be the default topology's rules.
#[test]
fn the_shipped_default_rules_are_the_default_topologys() {
    let shipped = include_str!("../../deploy/kafka-acls.rules");
    let rules = rules(&Config::default(), &Principals::default());
    let generated = render(&rules, "the defaults");
    assert!(
        shipped == generated,
        "deploy/kafka-acls.rules is out of date; regenerate it with\n  cargo run -- topology acls > deploy/kafka-acls.rules\n--- generated:\n{generated}"
    );
}

#[test]
fn a_rule_reads_as_kafka_acls_takes_it() {
    let rule = acl(
        "User:aura",
        vec![Operation::Write, Operation::Describe],
        Resource::TransactionalId,
        Pattern::Prefixed,
        "aura-".into(),
    );
    assert_eq!(
        rule.to_string(),
        "User:aura Write,Describe transactional-id prefixed aura-"
    );
}
