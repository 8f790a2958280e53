//! `aura agents`: simulated Observer, Analyst and Supervisor agents on Kafka.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{sign, verify_signature, Keyring, Rejection, Signable};
use crate::codec::Codec;
use crate::model::{AgentCommand, AgentResult, AgentVote, CompensationCommand};
use crate::runtime::trace::{answer_trace, TRACEPARENT};
use crate::sim::coordination::is_ballot;
use crate::sim::{AgentProfile, SimulatedAgents};

/// Run simulated agents: answer every command and compensation on agent.results
///
/// Each answer comes after a latency drawn from --latency-ms; --failure-rate of them report
/// FAILED and --silence-rate are never answered (so timeouts fire). Consensus ballots are
/// answered with a vote on agent.votes instead (a failing voter abstains, a silent one never
/// votes); --vote-disagreement makes voters split, to force ties and missed quorums. A
/// supervisor's plan request is answered with a plan of sub-tasks; cancels are not answered.
/// --fail-actions and --silent-actions pick chaos by action instead of by chance, so one step
/// of a workflow fails every time while the steps before it succeed. Examples:
///
///   aura agents --bootstrap-servers localhost:9092 --schema-registry-url http://localhost:8081 \
///       --latency-ms 5..50 --failure-rate 0.05 --silence-rate 0.01
///
///   # Every remediation fails, so each saga retries it, then compensates the earlier steps.
///   aura agents --failure-rate 0 --fail-actions apply-remediation
///
///   # Half the voters disagree with the others: watch consensus steps tie and escalate.
///   aura agents --vote-disagreement 0.5
// Verbatim, so the examples keep their lines instead of being joined into one paragraph.
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct AgentsArgs {
    #[command(flatten)]
    connection: crate::security::ConnectionArgs,
    #[arg(long, default_value = "orchestration.commands")]
    commands_topic: String,
    #[arg(long, default_value = "orchestration.compensations")]
    compensations_topic: String,
    #[arg(long, default_value = "agent.results")]
    results_topic: String,
    /// Where the agents register themselves (with a heartbeat every 5 s, and a tombstone on a
    /// clean stop), so the service's registry routes to them and balances load across them.
    #[arg(long, default_value = "agent.registry")]
    registry_topic: String,
    /// Simulated agents of each type (sim-observer-1, sim-analyst-1, ...). A command assigned
    /// to one of them is answered by it.
    #[arg(long, default_value_t = 1)]
    agents_per_type: u32,
    /// Commands each simulated agent can work on at once, as registered.
    #[arg(long, default_value_t = 100)]
    capacity: i32,
    /// Do not register on the registry topic (the agents still answer every command).
    #[arg(long)]
    no_register: bool,
    /// Where votes on consensus ballots go.
    #[arg(long, default_value = "agent.votes")]
    votes_topic: String,
    /// Consumer group of the agents; instances sharing it split the work.
    #[arg(long, default_value = "aura-agents")]
    group_id: String,
    /// Answer latency in milliseconds: a fixed `N` or a uniform range `MIN..MAX`.
    #[arg(long, default_value = "5..50", value_parser = parse_latency)]
    latency_ms: (i64, i64),
    /// Share of commands answered FAILED, in [0, 1].
    #[arg(long, default_value_t = 0.05)]
    failure_rate: f64,
    /// Share of commands never answered, in [0, 1].
    #[arg(long, default_value_t = 0.0)]
    silence_rate: f64,
    /// Share of voters who vote another option than their peers lean to, in [0, 1].
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    vote_disagreement: f64,
    /// Actions (comma-separated, as named in the workflow's `action` or `compensation.action`)
    /// always answered FAILED. Use it to watch a step exhaust its retries and the saga compensate.
    #[arg(long, value_delimiter = ',', value_name = "ACTION,...")]
    fail_actions: Vec<String>,
    /// Actions (comma-separated) never answered. Use it to watch a step time out and retry.
    #[arg(long, value_delimiter = ',', value_name = "ACTION,...")]
    silent_actions: Vec<String>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The agents' keyring (same format as Aura's `[agent_auth] keyring`). With it, commands
    /// and compensations not signed by Aura are refused, and every result is signed with the
    /// agent type's active key and the command's incarnation.
    #[arg(long, env = "AURA_AGENT_KEYRING", value_name = "FILE")]
    keyring: Option<std::path::PathBuf>,
}

fn parse_latency(text: &str) -> Result<(i64, i64), String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| format!("{s:?} is not a number of milliseconds"))
    };
    let (lo, hi) = match text.split_once("..") {
        Some((lo, hi)) => (parse(lo)?, parse(hi)?),
        None => (parse(text)?, parse(text)?),
    };
    if lo < 0 || hi < lo {
        return Err(format!(
            "{text:?}: expected N or MIN..MAX with 0 <= MIN <= MAX"
        ));
    }
    Ok((lo, hi))
}

pub async fn run(args: AgentsArgs) -> anyhow::Result<()> {
    for (name, rate) in [
        ("--failure-rate", args.failure_rate),
        ("--silence-rate", args.silence_rate),
        ("--vote-disagreement", args.vote_disagreement),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&rate),
            "{name} must be in [0, 1], got {rate}"
        );
    }
    let config = args.connection.config()?;
    let keyring = match &args.keyring {
        Some(path) => Some(Keyring::load(path, &crate::security::process_env)?),
        None => None,
    };
    let codec = match config.schema_registry.access() {
        Some(access) => Codec::with_registry_access(
            &access,
            &[
                (args.results_topic.as_str(), "aura.v1.AgentResult"),
                (args.registry_topic.as_str(), "aura.v1.AgentRegistration"),
                (args.votes_topic.as_str(), "aura.v1.AgentVote"),
            ],
        )
        .await
        .with_context(|| {
            format!(
                "cannot register the agents' schemas at {}; is the registry up?",
                access.url
            )
        })?,
        None => Codec::embedded(),
    };
    let consumer: StreamConsumer = crate::security::client_config(&config.kafka)
        .set("group.id", &args.group_id)
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("socket.nagle.disable", "true")
        // The service creates the command topics; notice them soon after they appear.
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create()
        .context("cannot create the consumer; check --bootstrap-servers")?;
    consumer.subscribe(&[&args.commands_topic, &args.compensations_topic])?;
    let producer: FutureProducer = crate::security::client_config(&config.kafka)
        .set("linger.ms", "1")
        .set("socket.nagle.disable", "true")
        .set("partitioner", "murmur2_random")
        .create()?;
    let profile = AgentProfile {
        latency_ms: args.latency_ms,
        failure_rate: args.failure_rate,
        silence_rate: args.silence_rate,
        fail_actions: args.fail_actions,
        silent_actions: args.silent_actions,
        vote_disagreement: args.vote_disagreement,
    };
    info!(
        commands = %args.commands_topic,
        results = %args.results_topic,
        fail_actions = ?profile.fail_actions,
        silent_actions = ?profile.silent_actions,
        "simulated agents running"
    );
    let mut agents = SimulatedAgents::new(profile, args.seed);
    let (stop, mut shutdown) = watch::channel(false);
    tokio::spawn(super::run::stop_on_signal(stop));
    let announcing = (!args.no_register).then(|| {
        tokio::spawn(super::agents_registry::announce(
            producer.clone(),
            codec.clone(),
            args.registry_topic.clone(),
            super::agents_registry::simulated(args.agents_per_type.max(1), args.capacity),
            shutdown.clone(),
        ))
    });
    loop {
        let message = tokio::select! {
            _ = shutdown.changed() => {
                if let Some(announcing) = announcing {
                    let _ = announcing.await; // the agents' tombstones
                }
                return Ok(());
            }
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(error) => {
                // e.g. the command topics do not exist yet: they are picked up once created.
                warn!(%error, "consume error");
                continue;
            }
        };
        let Some(bytes) = message.payload() else {
            continue;
        };
        let now = crate::clock::now_ms();
        // Answers are keyed by the command's partition_key, so they reach the saga's partition
        // (docs/KEYS.md); a command from before that field existed falls back to the saga id's.
        let key_of = |partition_key: &str, saga_id: &str| {
            if partition_key.is_empty() {
                crate::processor::incident_key(saga_id).to_string()
            } else {
                partition_key.to_string()
            }
        };
        let answer = if message.topic() == args.compensations_topic {
            match codec.decode::<CompensationCommand>(bytes).await {
                Ok(c) => match authentic(keyring.as_ref(), &c) {
                    Ok(incarnation) => agents
                        .compensate(&c, now)
                        .map(|a| (key_of(&c.partition_key, &c.saga_id), a, incarnation)),
                    Err(why) => {
                        warn!(command_id = %c.command_id, reason = why.code(), %why, "compensation refused");
                        continue;
                    }
                },
                Err(e) => {
                    warn!(error = %e, "undecodable compensation skipped");
                    continue;
                }
            }
        } else {
            match codec.decode::<AgentCommand>(bytes).await {
                Ok(c) => match authentic(keyring.as_ref(), &c) {
                    Ok(incarnation) if is_ballot(&c) => {
                        let key = key_of(&c.partition_key, &c.saga_id);
                        let signer = keyring.as_ref().zip(incarnation);
                        cast_vote(
                            &mut agents,
                            &c,
                            now,
                            (&producer, &codec, &args.votes_topic),
                            (key, signer),
                        );
                        continue;
                    }
                    Ok(incarnation) => agents
                        .answer(&c, now)
                        .map(|a| (key_of(&c.partition_key, &c.saga_id), a, incarnation)),
                    Err(why) => {
                        warn!(command_id = %c.command_id, reason = why.code(), %why, "command refused");
                        continue;
                    }
                },
                Err(e) => {
                    warn!(error = %e, "undecodable command skipped");
                    continue;
                }
            }
        };
        let Some((key, (due, mut result), incarnation)) = answer else {
            continue;
        };
        if let (Some(keyring), Some(incarnation)) = (&keyring, incarnation) {
            if let Err(e) = sign(keyring, &mut result, incarnation) {
                warn!(command_id = %result.command_id, error = %e, "result not signed; not sent");
                continue;
            }
        }
        // The answer continues the command's trace (the incident's).
        let command_trace = message.headers().and_then(|h| {
            use rdkafka::message::Headers as _;
            h.iter()
                .find(|h| h.key == TRACEPARENT)
                .and_then(|h| h.value)
        });
        let trace = answer_trace(command_trace, &key, &result.command_id);
        let (producer, codec, topic) =
            (producer.clone(), codec.clone(), args.results_topic.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((due - now).max(0) as u64)).await;
            if let Err(e) = send(&producer, &codec, &topic, &key, &result, &trace).await {
                warn!(error = %e, saga_id = %result.saga_id, "result not sent");
            }
        });
    }
}

/// With a keyring, a command must be signed by Aura with a live key of its agent type; its
/// incarnation is what the answer signs. Without one, every command is taken, unsigned.
fn authentic<T: Signable>(
    keyring: Option<&Keyring>,
    command: &T,
) -> Result<Option<i64>, Rejection> {
    let Some(keyring) = keyring else {
        return Ok(None);
    };
    verify_signature(keyring, command, None)?;
    Ok(command.proof().map(|p| p.incarnation))
}

async fn send(
    producer: &FutureProducer,
    codec: &Codec,
    topic: &str,
    key: &str,
    result: &AgentResult,
    trace: &str,
) -> anyhow::Result<()> {
    let value = codec.encode(topic, result)?;
    let headers = OwnedHeaders::new().insert(Header {
        key: TRACEPARENT,
        value: Some(trace),
    });
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(&value)
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// Votes on a ballot, after the drawn latency, keyed by the ballot's `partition_key`
/// (docs/KEYS.md) so the vote lands in the saga's partition. With a keyring the vote is signed
/// for the ballot's incarnation, as Aura verifies votes like results.
fn cast_vote(
    agents: &mut SimulatedAgents,
    ballot: &AgentCommand,
    now: i64,
    (producer, codec, topic): (&FutureProducer, &Codec, &str),
    (key, signer): (String, Option<(&Keyring, i64)>),
) {
    let Some((due, mut vote)) = agents.vote(ballot, now) else {
        return;
    };
    if let Some((keyring, incarnation)) = signer {
        if let Err(e) = sign(keyring, &mut vote, incarnation) {
            warn!(vote_id = %vote.vote_id, error = %e, "vote not signed; not sent");
            return;
        }
    }
    let (producer, codec, topic) = (producer.clone(), codec.clone(), topic.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis((due - now).max(0) as u64)).await;
        if let Err(e) = send_vote(&producer, &codec, &topic, &key, &vote).await {
            warn!(error = %e, saga_id = %vote.saga_id, "vote not sent");
        }
    });
}

async fn send_vote(
    producer: &FutureProducer,
    codec: &Codec,
    topic: &str,
    key: &str,
    vote: &AgentVote,
) -> anyhow::Result<()> {
    let value = codec.encode(topic, vote)?;
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(&value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}
