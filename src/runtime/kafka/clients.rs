//! librdkafka client settings, derived from the `[kafka]` table.

use rdkafka::ClientConfig;

use crate::config::{KafkaConfig, ProcessingGuarantee};

fn base(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        // Requests are small and latency-bound: Nagle plus delayed ACKs would hold them
        // back for tens of milliseconds.
        .set("socket.nagle.disable", "true");
    c
}

/// The user's `[kafka.properties]`, the environment's security settings and the secrets go
/// last, so they can override any default here.
fn with_overrides(mut c: ClientConfig, kafka: &KafkaConfig) -> ClientConfig {
    crate::security::kafka::apply(kafka, &mut c);
    c
}

/// The group consumer for the input streams. Offsets are committed by the runtime only
/// (never automatically), and under exactly-once only committed outputs are read.
pub fn stream_consumer(kafka: &KafkaConfig, instance_id: &str) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", &kafka.group_id)
        .set("client.id", format!("{}-{instance_id}", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A new group starts from the beginning, as Kafka Streams does.
        .set("auto.offset.reset", "earliest")
        // Input topics created after start-up are picked up within seconds.
        .set("topic.metadata.refresh.interval.ms", "2000")
        .set("fetch.wait.max.ms", "5")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        // librdkafka's statistics carry each partition's offsets: the consumer lag metric.
        .set("statistics.interval.ms", "5000")
        .set(
            "isolation.level",
            match kafka.processing_guarantee {
                ProcessingGuarantee::ExactlyOnceV2 => "read_committed",
                ProcessingGuarantee::AtLeastOnce => "read_uncommitted",
            },
        );
    if kafka.static_membership {
        c.set(
            "group.instance.id",
            format!("{}-{instance_id}", kafka.group_id),
        );
    }
    with_overrides(c, kafka)
}

/// The producer for outputs. Under exactly-once it is transactional with a stable id per
/// instance, so a restarted instance fences its predecessor's open transaction at once
/// instead of waiting for it to time out.
pub fn producer(kafka: &KafkaConfig, instance_id: &str, slot: usize) -> ClientConfig {
    let mut c = base(kafka);
    c.set(
        "client.id",
        format!("{}-{instance_id}-producer-{slot}", kafka.group_id),
    )
    .set("enable.idempotence", "true")
    .set("acks", "all")
    .set("linger.ms", "0")
    // Java's partitioner, so keys land where Java producers and Kafka Streams put them.
    .set("partitioner", "murmur2_random")
    .set("queue.buffering.max.messages", "1000000")
    // A transaction begun right after a commit is refused with CONCURRENT_TRANSACTIONS
    // until the commit markers are written (about a millisecond on a healthy broker);
    // the default 100 ms retry backoff would add a tenth of a second to every commit.
    .set("retry.backoff.ms", "2")
    .set("retry.backoff.max.ms", "200");
    if kafka.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2 {
        c.set(
            "transactional.id",
            format!("{}-{instance_id}-{slot}", kafka.group_id),
        )
        .set("transaction.timeout.ms", "10000");
    }
    with_overrides(c, kafka)
}

/// A plain idempotent producer for the rare records written outside any transaction: dead
/// letters of table topics, which are read by every instance and belong to no task.
pub fn dead_letter_producer(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0");
    with_overrides(c, kafka)
}

/// A group-less consumer that reads a whole table topic.
pub fn table_consumer(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", format!("{}-tables", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("topic.metadata.refresh.interval.ms", "2000");
    with_overrides(c, kafka)
}

/// A group-less consumer that reads changelog partitions during a restore.
pub fn restore_consumer(kafka: &KafkaConfig) -> ClientConfig {
    let mut c = base(kafka);
    c.set("group.id", format!("{}-restore", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        // The end of a changelog partition ends its restore, even when its last records
        // belong to an aborted transaction and are never delivered.
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        // A restore reads whole partitions as fast as it can: fetch big.
        .set("max.partition.fetch.bytes", "16777216");
    with_overrides(c, kafka)
}

/// The admin client that creates missing topics.
pub fn admin(kafka: &KafkaConfig) -> ClientConfig {
    with_overrides(base(kafka), kafka)
}
