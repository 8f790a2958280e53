//! Consensus steps on the real broker, votes read from `agent.votes` and decisions written to
//! `orchestration.decisions`, everything read back under read_committed:
//! - quorum reached takes the decided edge; a 1–2 split waits for the last ballot (the edge
//!   case: quorum alone does not decide while a pending ballot could still change the winner);
//! - a tie escalates; a deadline with too few votes escalates;
//! - a repeated vote (and one agent voting on two ballots) is counted once;
//! - a vote no ballot asked for, or from an agent type the ballot did not ask, is dead-lettered
//!   with `vote_not_asked`;
//! - SIGKILL mid-consensus: the restarted instance restores the votes already counted, and every
//!   decision is written exactly once;
//! - with agent auth, `aura agents --keyring` votes signed and decides every saga, while
//!   unsigned and forged votes are dead-lettered with their auth codes.
//!
//! Except with agent auth, the test casts the votes itself (its `aura agents` stay silent on
//! ballots and answer every other command), so each saga gets exactly the votes its scenario
//! needs. All sagas run
//! `tests/workflows/consensus/triage.toml`; one service serves all the scenarios of the first test.

mod common;
#[allow(dead_code)]
#[path = "saga_failures/history.rs"]
mod history;
#[path = "support/keys.rs"]
mod keys;
#[path = "support/voting.rs"]
mod voting;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aura::codec::Codec;
use aura::model::{
    AgentCommand, AgentVote, ConsensusDecision, ConsensusOutcome as O, DeadLetter, SagaEvent,
    SagaEventKind as K,
};
use common::*;
use history::*;
use voting::*;

/// The ballot action `aura agents` is told to leave alone.
const BALLOT_ACTION: &str = "choose-remedy";

fn workflows() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/workflows/consensus")
}

/// A config on `topics` whose sagas all run `workflows`' `triage` (routing matches no pattern).
fn config(topics: &TestTopics, dir: &Path, workflows: &Path) -> PathBuf {
    let extra = format!(
        "[sagas]\nenabled = true\nworkflows = {:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n",
        workflows.display().to_string()
    );
    topics.write_config_with(dir, "exactly_once_v2", &extra)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    /// Two analysts agree: decided on the second vote; the supervisor's third vote is late.
    Agreed,
    /// remediate, rollback, rollback: quorum after two votes, but decided only by the third.
    Split,
    /// One vote each way, the third voter silent: TIED at the deadline, escalated.
    Tie,
    /// One vote only: NO_QUORUM at the deadline, escalated.
    NoQuorum,
    /// The first vote twice, and its agent again on the second ballot; then another agent.
    Duplicate,
    /// A vote on a ballot never sent, an observer on the supervisor's ballot; then two votes.
    NotAsked,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario::Agreed,
    Scenario::Split,
    Scenario::Tie,
    Scenario::NoQuorum,
    Scenario::Duplicate,
    Scenario::NotAsked,
];

async fn play(voter: &Voter, scenario: Scenario, b: &[AgentCommand]) {
    let saga = &b[0].saga_id;
    match scenario {
        Scenario::Agreed => {
            voter.cast(&b[0], "a-1", "rollback").await;
            voter.cast(&b[1], "a-2", "rollback").await;
            voter.cast(&b[2], "s-1", "remediate").await;
        }
        Scenario::Split => {
            voter.cast(&b[0], "a-1", "remediate").await;
            voter.cast(&b[1], "a-2", "rollback").await;
            voter.cast(&b[2], "s-1", "rollback").await;
        }
        Scenario::Tie => {
            voter.cast(&b[0], "a-1", "remediate").await;
            voter.cast(&b[1], "a-2", "rollback").await;
        }
        Scenario::NoQuorum => voter.cast(&b[0], "a-1", "rollback").await,
        Scenario::Duplicate => {
            voter.cast(&b[0], "a-1", "rollback").await;
            voter.cast(&b[0], "a-1", "rollback").await;
            voter.cast(&b[1], "a-1", "rollback").await;
            voter.cast(&b[1], "a-2", "rollback").await;
        }
        Scenario::NotAsked => {
            let mut stranger = vote(&b[0], "x-1", "remediate");
            stranger.vote_id = format!("{saga}/decide/v7/1");
            voter.send(&b[0].partition_key, &stranger).await;
            let mut observer = vote(&b[2], "o-1", "remediate");
            observer.agent_type = aura::model::AgentType::Observer;
            voter.send(&b[2].partition_key, &observer).await;
            voter.cast(&b[0], "a-1", "rollback").await;
            voter.cast(&b[1], "a-2", "rollback").await;
        }
    }
}

/// What a saga's one decision and history must show for its scenario.
fn check(scenario: Scenario, d: &ConsensusDecision, h: &[SagaEvent]) {
    let saga = &d.saga_id;
    assert_eq!(d.decision_id, format!("{saga}/decide/decision/1"));
    assert_eq!(d.quorum, 2);
    let tally = |o: &str| d.tally.get(o).copied().unwrap_or(0.0);
    let (outcome, votes, rollback, remediate) = match scenario {
        Scenario::Agreed | Scenario::Duplicate | Scenario::NotAsked => (O::Agreed, 2, 2.0, 0.0),
        Scenario::Split => (O::Agreed, 3, 2.0, 1.0),
        Scenario::Tie => (O::Tied, 2, 1.0, 1.0),
        Scenario::NoQuorum => (O::NoQuorum, 1, 1.0, 0.0),
    };
    assert_eq!(
        (
            d.outcome,
            d.votes_cast,
            tally("rollback"),
            tally("remediate")
        ),
        (outcome, votes, rollback, remediate),
        "{scenario:?}: {d:#?}"
    );
    let mut voters = d.voters.clone();
    voters.sort();
    let expected: &[&str] = match scenario {
        Scenario::Split => &["a-1", "a-2", "s-1"],
        Scenario::NoQuorum => &["a-1"],
        _ => &["a-1", "a-2"],
    };
    assert_eq!(voters, expected, "{scenario:?}: each voter counted once");
    assert_eq!(h.last().map(|e| e.kind), Some(K::Completed), "{h:#?}");
    let mut steps: Vec<&str> = h
        .iter()
        .filter(|e| e.kind == K::StepStarted)
        .filter_map(|e| e.step.as_deref())
        .filter(|s| *s != "decide")
        .collect();
    steps.dedup();
    let path: &[&str] = match outcome {
        O::Agreed => &["rollback"],
        _ => &["escalate", "stand-down"],
    };
    assert_eq!(steps, path, "{scenario:?}: {h:#?}");
}

/// The service's `aura_saga_inputs_total{input="vote",outcome=...}`.
async fn vote_inputs(service: &Service) -> HashMap<String, f64> {
    let url = format!("http://{}/metrics", http_address(service));
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("aura_saga_inputs_total{") && l.contains("input=\"vote\""))
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?;
            let value = l.rsplit(' ').next()?.parse().ok()?;
            Some((outcome.to_string(), value))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn votes_decide_tie_or_miss_quorum_and_escalate_and_are_counted_once() {
    let topics = TestTopics::new("consensus");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&topics, dir.path(), &workflows());
    let sagas = 2 * SCENARIOS.len();
    produce_anomalies_from(&topics.anomalies, sagas as u64, 1_000_000_000_000_000, 91).await;
    let service = Service::start(&config, "consensus", dir.path());
    let _agents = agents_that_leave_ballots_to_the_test(&topics, dir.path());

    let ballots = ballots(&topics.commands, sagas, BALLOT_ACTION).await;
    assert_eq!(ballots.len(), sagas);
    let voter = Voter::new(&topics.votes).await;
    let mut scenario_of = BTreeMap::new();
    for (i, (saga, b)) in ballots.iter().enumerate() {
        let scenario = SCENARIOS[i % SCENARIOS.len()];
        scenario_of.insert(saga.clone(), scenario);
        play(&voter, scenario, b).await;
    }

    let histories = saga_histories(
        &topics.sagas,
        sagas,
        Duration::from_secs(2),
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(histories.len(), sagas, "{}", service.log_text());
    assert_eq!(duplicates(&histories), 0);
    let decided = decisions(&topics.decisions, sagas).await;
    assert_eq!(decided.len(), sagas, "one decision per saga: {decided:#?}");
    for (saga, scenario) in &scenario_of {
        let d = &decided[saga];
        assert_eq!(d.len(), 1, "{saga} decided {} times: {d:#?}", d.len());
        check(*scenario, &d[0], &histories[saga]);
    }

    // Tied and short consensus steps escalated one layer up, once each.
    let escalated = escalations(&topics.escalations, 4).await;
    for (saga, scenario) in &scenario_of {
        let n = escalated.get(saga).map_or(0, Vec::len);
        let expected = usize::from(matches!(scenario, Scenario::Tie | Scenario::NoQuorum));
        assert_eq!(n, expected, "{saga} ({scenario:?}): {escalated:#?}");
    }

    // The two votes no ballot asked for, per NotAsked saga, are dead letters with the reason.
    let letters: Vec<DeadLetter> = decode_topic(&topics.dlq, 4).await;
    assert_eq!(letters.len(), 4, "{letters:#?}");
    let codec = Codec::with_registry(&registry(), &[]).await.unwrap();
    for l in &letters {
        assert_eq!(l.error_class, "vote_not_asked", "{l:#?}");
        assert_eq!(l.topic, topics.votes);
        let v: AgentVote = codec.decode(l.value.as_deref().unwrap()).await.unwrap();
        assert_eq!(scenario_of[&v.saga_id], Scenario::NotAsked);
    }

    // Repeats and late votes change nothing and are counted: 2 repeats per Duplicate saga, the
    // third vote of each Agreed saga.
    let counted = vote_inputs(&service).await;
    let n = |o: &str| counted.get(o).copied().unwrap_or(0.0);
    assert_eq!((n("duplicate"), n("late")), (4.0, 2.0), "{counted:?}");
    assert_eq!((n("not_asked"), n("rejected")), (2.0, 2.0), "{counted:?}");
    assert!(service.stop().success());
}

/// SIGKILL with votes counted and decisions in flight: the restarted instance restores each
/// saga's tally from the changelog, so a decision needs only the votes still missing, and every
/// decision is written exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_consensus_resumes_and_each_decision_is_written_once() {
    let topics = TestTopics::new("consensus-kill");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    // A deadline of a minute: a read_committed reader sees no ballot of the killed instance's
    // open transaction until it is aborted, and that wait must not decide anything.
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    let text = std::fs::read_to_string(self::workflows().join("triage.toml")).unwrap();
    let long = text.replace("timeout_ms = 10000", "timeout_ms = 60000");
    assert_ne!(long, text);
    std::fs::write(workflows.join("triage.toml"), long).unwrap();
    let config = config(&topics, dir.path(), &workflows);
    let text = std::fs::read_to_string(&config).unwrap();
    let static_member = text.replace("[kafka]\n", "[kafka]\n\"static.membership\" = true\n");
    std::fs::write(&config, static_member).unwrap();
    let sagas = 40;
    produce_anomalies_from(&topics.anomalies, sagas as u64, 1_000_000_000_000_000, 93).await;
    let first = Service::start(&config, "consensus-victim", dir.path());
    let _agents = agents_that_leave_ballots_to_the_test(&topics, dir.path());
    let ballots = ballots(&topics.commands, sagas, BALLOT_ACTION).await;
    let voter = Voter::new(&topics.votes).await;

    // Every saga gets its first vote, and the first instance counts it (its tally shows it).
    for b in ballots.values() {
        voter.cast(&b[0], "a-1", "rollback").await;
    }
    let base = format!("http://{}", http_address(&first));
    let deadline = Instant::now() + Duration::from_secs(60);
    for saga in ballots.keys() {
        loop {
            let url = format!("{base}/sagas/{saga}");
            let state: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
            if state["current"]["tally"]["rollback"].as_f64() == Some(1.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{saga}: vote never counted: {state}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Half the sagas get their deciding vote right before the kill: some of those decisions
    // are committed, others in the transaction the kill leaves open.
    let (now, later): (Vec<_>, Vec<_>) =
        ballots.values().enumerate().partition(|(i, _)| i % 2 == 0);
    for (_, b) in &now {
        voter.cast(&b[1], "a-2", "rollback").await;
    }
    let killed_at = aura::clock::now_ms();
    first.kill();
    let second = Service::start(&config, "consensus-victim", dir.path());
    // The other half after the restart, plus a repeat of every first vote (an agent retrying).
    for (_, b) in &later {
        voter.cast(&b[1], "a-2", "rollback").await;
    }
    for b in ballots.values() {
        voter.cast(&b[0], "a-1", "rollback").await;
    }

    let histories = saga_histories(
        &topics.sagas,
        sagas,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(histories.len(), sagas, "{}", second.log_text());
    assert_eq!(duplicates(&histories), 0);
    let decided = decisions(&topics.decisions, sagas).await;
    assert_eq!(decided.len(), sagas);
    for (saga, d) in &decided {
        assert_eq!(d.len(), 1, "{saga} decided {} times: {d:#?}", d.len());
        // The first vote was counted before the kill and restored after it: two voters, not
        // one, and the saga took the decided edge.
        check(Scenario::Agreed, &d[0], &histories[saga]);
    }
    // Of the deciding votes sent before the kill, those decided after it were uncommitted or
    // unread when the first instance died.
    let redone = now
        .iter()
        .filter(|(_, b)| decided[&b[0].saga_id][0].at >= killed_at)
        .count();
    eprintln!(
        "consensus kill: {} sagas decided once each; of the {} deciding votes sent just before the kill, {redone} were decided by the restarted instance",
        decided.len(),
        now.len()
    );
    assert!(second.stop().success());
}

/// With agent auth the votes of `aura agents --keyring` are signed for the saga's incarnation and
/// decide every saga; an unsigned vote and a forged one per saga are dead letters with their
/// codes, and the honest voters' late third votes are only counted (no dead letter).
#[tokio::test(flavor = "multi_thread")]
async fn with_agent_auth_signed_votes_decide_and_unsigned_or_forged_ones_are_dead_letters() {
    let topics = TestTopics::new("consensus-auth");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let (keyring_path, keyring) = keys::write_keyring(dir.path());
    let config = config(&topics, dir.path(), &workflows());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("\n[agent_auth]\nkeyring = \"{}\"\n", keyring_path.display());
    std::fs::write(&config, text).unwrap();
    let sagas = 6;
    produce_anomalies_from(&topics.anomalies, sagas as u64, 1_000_000_000_000_000, 95).await;
    let service = Service::start(&config, "consensus-auth", dir.path());
    let keyring_arg = keyring_path.to_str().unwrap();
    let flags = [
        "--latency-ms",
        "200..400",
        "--failure-rate",
        "0",
        "--keyring",
        keyring_arg,
    ];
    let _agents = start_agents_with(&topics, dir.path(), &flags);

    // Per saga an unsigned vote, and a vote signed for the ballot and then altered: refused
    // on entry, whether they come before or after the agents' own votes.
    let ballots = ballots(&topics.commands, sagas, BALLOT_ACTION).await;
    let voter = Voter::new(&topics.votes).await;
    for b in ballots.values() {
        voter
            .send(&b[0].partition_key, &vote(&b[0], "x-1", "remediate"))
            .await;
        let incarnation = b[1].proof.as_ref().expect("ballots are signed").incarnation;
        let mut forged = vote(&b[1], "x-2", "remediate");
        aura::auth::sign(&keyring, &mut forged, incarnation).unwrap();
        forged.choice = "rollback".into();
        voter.send(&b[1].partition_key, &forged).await;
    }

    let histories = saga_histories(
        &topics.sagas,
        sagas,
        Duration::from_secs(2),
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(histories.len(), sagas, "{}", service.log_text());
    let decided = decisions(&topics.decisions, sagas).await;
    assert_eq!(decided.len(), sagas);
    for (saga, d) in &decided {
        assert_eq!(d.len(), 1, "{saga}: {d:#?}");
        assert_eq!((d[0].outcome, d[0].votes_cast), (O::Agreed, 2), "{d:#?}");
        assert!(d[0].voters.iter().all(|v| v.starts_with("sim-")), "{d:#?}");
        assert_eq!(histories[saga].last().map(|e| e.kind), Some(K::Completed));
    }
    let letters: Vec<DeadLetter> = decode_topic(&topics.dlq, 2 * sagas).await;
    let mut codes: Vec<&str> = letters.iter().map(|l| l.error_class.as_str()).collect();
    codes.sort();
    let mut expected = vec!["auth_forged"; sagas];
    expected.extend(vec!["auth_unsigned"; sagas]);
    assert_eq!(codes, expected, "{letters:#?}");
    let counted = vote_inputs(&service).await;
    assert_eq!(
        counted.get("applied"),
        Some(&(2.0 * sagas as f64)),
        "{counted:?}"
    );
    assert!(service.stop().success());
}

/// Simulated agents that answer every command quickly and never vote, so the test casts the
/// votes itself.
fn agents_that_leave_ballots_to_the_test(topics: &TestTopics, dir: &std::path::Path) -> Service {
    let flags = [
        "--latency-ms",
        "1..20",
        "--failure-rate",
        "0",
        "--silent-actions",
        BALLOT_ACTION,
    ];
    start_agents_with(topics, dir, &flags)
}
