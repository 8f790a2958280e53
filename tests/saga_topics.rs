//! Start-up checks of the saga topics on the real broker: topics that cannot be co-partitioned,
//! or a changelog that would lose state, make `aura run` refuse to start with a message that
//! names the topic and what to do.

mod common;

use std::process::Command;

use common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

/// Runs `aura run` to its exit; it must fail at start-up. Returns its stderr.
fn refused_start(config: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_aura"))
        .args(["run", "--config"])
        .arg(config)
        .args(["--instance-id", "refused"])
        .env("AURA_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(
        !output.status.success(),
        "aura run started although it must refuse:\n{stderr}"
    );
    stderr
}

async fn create_topic_with(name: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .unwrap();
    let topic = config.iter().fold(
        NewTopic::new(name, partitions, TopicReplication::Fixed(1)),
        |t, (k, v)| t.set(k, v),
    );
    for r in admin
        .create_topics(&[topic], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("cannot create {t}: {e}"));
    }
}

#[tokio::test]
async fn votes_with_another_partition_count_than_results_are_refused() {
    let topics = TestTopics::new("copartition");
    create_topic(&topics.results, 3).await;
    create_topic(&topics.votes, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");

    let stderr = refused_start(&config);
    assert!(
        stderr.contains(&topics.votes)
            && stderr.contains("has 2 partitions but must have 3")
            && stderr.contains(&topics.results)
            && stderr.contains("recreate it"),
        "the refusal must name the topic, both counts and the fix:\n{stderr}"
    );
}

#[tokio::test]
async fn a_changelog_that_is_not_compacted_is_refused() {
    let topics = TestTopics::new("compaction");
    create_topic(&topics.results, 3).await;
    let changelog = format!("{}-sagas-changelog", topics.group);
    create_topic_with(&changelog, 3, &[("cleanup.policy", "delete")]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = topics.write_config(dir.path(), "exactly_once_v2");

    let stderr = refused_start(&config);
    assert!(
        stderr.contains(&changelog)
            && stderr.contains("must be compacted")
            && stderr.contains("cleanup.policy=delete"),
        "the refusal must name the changelog and its policy:\n{stderr}"
    );
}
