//! Coordination steps on the real broker: a crew whose join cannot be met compensates the
//! branches that succeeded, newest first; a `quorum(2)` crew completes on two branches and
//! cancels the third; a supervisor's plan of 5 sub-tasks fans out, joins and goes back to the
//! supervisor; an escalation to strategic waits for an approval and times out into its declared
//! outcome. Everything is read back under read_committed, and no saga event is duplicated.
//!
//! Every saga runs the `triage` workflow of `tests/workflows/<folder>/` (see its README for how
//! routing is made to pick it). Consensus steps have their own file, `tests/consensus.rs`.

mod common;
// Shared with `tests/saga_failures.rs`, which uses the rest of it.
#[allow(dead_code)]
#[path = "saga_failures/history.rs"]
mod history;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aura::model::{AgentCommand, CompensationCommand, Layer, SagaEvent, SagaEventKind as K};
use common::*;
use history::*;

fn folder(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/workflows")
        .join(name)
}

/// A service on `workflows` (every anomaly routed to its `triage`) and agents behaving as
/// `behaviour` says; returns once `sagas` sagas have ended.
async fn run(
    test: &str,
    workflows: &Path,
    sagas: u64,
    behaviour: &[&str],
) -> (TestTopics, Histories, Service, Service, tempfile::TempDir) {
    let topics = TestTopics::new(test);
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[sagas]\nenabled = true\nworkflows = {:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n",
        workflows.display().to_string()
    );
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", &extra);
    produce_anomalies_from(&topics.anomalies, sagas, 1_000_000_000_000_000, 71).await;
    let service = Service::start(&config, test, dir.path());
    let mut flags = vec!["--latency-ms", "1..20", "--failure-rate", "0"];
    flags.extend_from_slice(behaviour);
    let agents = start_agents_with(&topics, dir.path(), &flags);
    let histories = saga_histories(
        &topics.sagas,
        sagas as usize,
        Duration::from_secs(2),
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(
        histories.len(),
        sagas as usize,
        "service log:\n{}",
        service.log_text()
    );
    assert_eq!(duplicates(&histories), 0);
    (topics, histories, service, agents, dir)
}

fn last_kind(h: &[SagaEvent]) -> K {
    h.last().map(|e| e.kind).unwrap()
}

/// The command ids of `kind` events of `step`'s branches, in order.
fn branch_ids(h: &[SagaEvent], kind: K, step: &str) -> Vec<String> {
    h.iter()
        .filter(|e| e.kind == kind && e.step.as_deref() == Some(step))
        .filter_map(|e| e.command_id.clone())
        .filter(|id| id.contains(&format!("/{step}/b")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crew_whose_join_fails_compensates_the_succeeded_branches_newest_first() {
    let behaviour = ["--fail-actions", "sample-traces"];
    let (topics, histories, service, _agents, _dir) =
        run("crew-all", &folder("crew"), 6, &behaviour).await;
    // Per saga, each of the two other branches is undone (it succeeded before the failure) or
    // cancelled (it had not), and then `prepare` is undone.
    let issued = compensations(&topics.compensations, histories.len() * 3).await;
    let mut undone_branches = 0;
    for (saga, h) in &histories {
        assert_eq!(last_kind(h), K::Compensated, "{saga}: {h:#?}");
        let succeeded = branch_ids(h, K::StepSucceeded, "investigate");
        let (cancels, undos): (Vec<&CompensationCommand>, Vec<&CompensationCommand>) =
            issued[saga].iter().partition(|c| c.action == "cancel");
        assert_eq!(succeeded.len() + cancels.len(), 2, "{saga}: {h:#?}");
        // Newest first: the branch that succeeded last is undone first, then prepare.
        let mut expected: Vec<String> = succeeded.iter().rev().cloned().collect();
        expected.push(format!("{saga}/prepare/1"));
        let got: Vec<String> = undos
            .iter()
            .map(|c| c.compensates_command_id.clone())
            .collect();
        assert_eq!(got, expected, "{saga}");
        assert!(undos[..succeeded.len()]
            .iter()
            .all(|c| c.action == "undo-investigation"));
        undone_branches += succeeded.len();
    }
    assert!(
        undone_branches > 0,
        "no branch succeeded before its crew failed"
    );
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_of_2_crew_completes_on_two_branches_and_cancels_the_third() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(folder("crew").join("triage.toml")).unwrap();
    let quorum = text.replace("join = \"all\"", "join = \"quorum(2)\"");
    assert_ne!(quorum, text);
    std::fs::write(dir.path().join("triage.toml"), quorum).unwrap();
    let behaviour = ["--silent-actions", "sample-traces"];
    let (topics, histories, service, _agents, _tmp) =
        run("crew-quorum", dir.path(), 4, &behaviour).await;
    let issued = compensations(&topics.compensations, histories.len()).await;
    for (saga, h) in &histories {
        assert_eq!(last_kind(h), K::Completed, "{saga}: {h:#?}");
        assert_eq!(branch_ids(h, K::StepSucceeded, "investigate").len(), 2);
        assert!(h.iter().any(|e| e.step.as_deref() == Some("report")));
        let cancels: Vec<&CompensationCommand> = issued[saga].iter().collect();
        assert_eq!(cancels.len(), 1, "{saga}: only the cancel: {cancels:#?}");
        assert_eq!(cancels[0].action, "cancel");
        assert_eq!(
            cancels[0].compensates_command_id,
            format!("{saga}/investigate/b2/1")
        );
    }
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_plan_of_5_sub_tasks_fans_out_and_joins() {
    let (topics, histories, service, _agents, _dir) =
        run("supervisor-plan", &folder("supervisor-plan"), 3, &[]).await;
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, histories.len() * 8).await;
    for (saga, h) in &histories {
        assert_eq!(last_kind(h), K::Completed, "{saga}: {h:#?}");
        let started = branch_ids(h, K::StepStarted, "plan");
        let done = branch_ids(h, K::StepSucceeded, "plan");
        assert_eq!((started.len(), done.len()), (5, 5), "{saga}: {h:#?}");
        let mine: Vec<&AgentCommand> = commands.iter().filter(|c| &c.saga_id == saga).collect();
        let review = mine
            .iter()
            .find(|c| c.command_id == format!("{saga}/plan/final/1"))
            .unwrap_or_else(|| panic!("{saga}: no final request in {mine:#?}"));
        assert_eq!(review.action, "review-remediation");
        // The review comes after every sub-task succeeded, and verify after the review.
        let at = |id: &str| h.iter().position(|e| e.command_id.as_deref() == Some(id));
        let last_branch = done.iter().filter_map(|id| at(id)).max().unwrap();
        assert!(
            at(&review.command_id).unwrap() > last_branch,
            "{saga}: {h:#?}"
        );
    }
    assert!(service.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_to_strategic_waits_for_approval_and_times_out_into_its_outcome() {
    let behaviour = ["--silent-actions", "approve-remediation"];
    let (topics, histories, service, _agents, _dir) = run(
        "strategic-approval",
        &folder("strategic-approval"),
        3,
        &behaviour,
    )
    .await;
    let escalated = escalations(&topics.escalations, histories.len() * 2).await;
    let commands: Vec<AgentCommand> = decode_topic(&topics.commands, histories.len() * 3).await;
    for (saga, h) in &histories {
        assert_eq!(last_kind(h), K::Completed, "{saga}: {h:#?}");
        // Routing picks the starting layer; each escalation goes one up, ending strategic.
        let up = &escalated[saga];
        assert_eq!(up.len(), 2, "{saga}: {up:#?}");
        for e in up {
            let above = match e.from_layer {
                Layer::Operational => Layer::Tactical,
                _ => Layer::Strategic,
            };
            assert_eq!(e.to_layer, above, "{saga}: {up:#?}");
        }
        assert_eq!(up[1].from_layer, up[0].to_layer);
        assert_eq!(up[1].to_layer, Layer::Strategic);
        let ask = commands
            .iter()
            .find(|c| &c.saga_id == saga && c.action == "approve-remediation")
            .unwrap();
        assert_eq!(ask.layer, Layer::Strategic);
        let timed_out = of(h, K::StepTimedOut, "to-strategic");
        assert_eq!(timed_out.len(), 1, "{saga}: {h:#?}");
        assert!(timed_out[0].reason.as_deref().unwrap().contains("rejected"));
        let steps: Vec<&str> = h
            .iter()
            .filter(|e| e.kind == K::StepStarted)
            .filter_map(|e| e.step.as_deref())
            .collect();
        assert_eq!(
            steps,
            ["to-tactical", "to-strategic", "stand-down"],
            "{saga}"
        );
    }
    assert!(service.stop().success());
}

/// SIGKILL while crews are out: the restarted instance restores their branches from the
/// changelog, every saga still ends, and no event, cancel or compensation is written twice.
#[tokio::test(flavor = "multi_thread")]
async fn crews_in_flight_survive_a_sigkill_and_join_once() {
    let topics = TestTopics::new("crew-kill");
    create_topic(&topics.anomalies, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(folder("crew").join("triage.toml")).unwrap();
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows).unwrap();
    // Timeouts of a minute: read_committed agents see no command until the killed instance's
    // open transaction is aborted, and that wait must not time steps out.
    let quorum = text
        .replace("join = \"all\"", "join = \"quorum(2)\"")
        .replace("timeout_ms = 5000", "timeout_ms = 60000")
        .replace("timeout_ms = 10000", "timeout_ms = 60000");
    std::fs::write(workflows.join("triage.toml"), quorum).unwrap();
    let extra = format!(
        "[sagas]\nenabled = true\nworkflows = {:?}\n\n[semantic.matcher]\nradius_factor = 1e-12\n",
        workflows.display().to_string()
    );
    let config = topics.write_config_with(dir.path(), "exactly_once_v2", &extra);
    let text = std::fs::read_to_string(&config).unwrap();
    let static_member = text.replace("[kafka]\n", "[kafka]\n\"static.membership\" = true\n");
    std::fs::write(&config, static_member).unwrap();
    let sagas = 200;
    produce_anomalies_from(&topics.anomalies, sagas, 1_000_000_000_000_000, 73).await;
    let first = Service::start(&config, "crew-victim", dir.path());
    // Slow agents, so that crews are out when the service dies.
    let flags = ["--latency-ms", "300..1500", "--failure-rate", "0"];
    let _agents = start_agents_with(&topics, dir.path(), &flags);
    // Kill once many branches are committed as started.
    read_committed(&topics.sagas, Duration::from_secs(90), |r| r.len() >= 600);
    let killed_at = aura::clock::now_ms();
    first.kill();
    let second = Service::start(&config, "crew-victim", dir.path());
    let histories = saga_histories(
        &topics.sagas,
        sagas as usize,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(histories.len(), sagas as usize, "{}", second.log_text());
    assert_eq!(
        duplicates(&histories),
        0,
        "read_committed sees no duplicated event"
    );
    let issued = compensations(&topics.compensations, 1).await;
    let mut cancels = 0;
    for (saga, h) in &histories {
        assert!(is_terminal(last_kind(h)), "{saga}: {h:#?}");
        let closed = h
            .iter()
            .filter(|e| e.step.as_deref() == Some("investigate") && e.command_id.is_none())
            .count();
        assert!(
            closed <= 1,
            "{saga}: the crew closed {closed} times: {h:#?}"
        );
        let ids: Vec<&str> = issued
            .get(saga)
            .into_iter()
            .flatten()
            .map(|c| c.command_id.as_str())
            .collect();
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{saga}: {ids:?}");
        cancels += ids.iter().filter(|id| id.contains("/cancel/")).count();
    }
    // Crews were out at the kill: branches started before it, joined after the restart.
    let straddling = histories
        .values()
        .filter(|h| {
            let started = branch_ids(h, K::StepStarted, "investigate");
            let first_branch = h
                .iter()
                .find(|e| e.command_id.as_ref() == started.first())
                .map(|e| e.at);
            let joined = h.iter().find(|e| {
                e.step.as_deref() == Some("investigate")
                    && e.command_id.is_none()
                    && e.kind == K::StepSucceeded
            });
            first_branch.is_some_and(|at| at < killed_at)
                && joined.is_some_and(|e| e.at > killed_at)
        })
        .count();
    assert!(straddling > 0, "no crew was in flight at the kill");
    let completed = histories
        .values()
        .filter(|h| last_kind(h) == K::Completed)
        .count();
    let why: Vec<String> = histories
        .values()
        .filter(|h| last_kind(h) != K::Completed)
        .filter_map(|h| h.iter().rev().find(|e| e.kind == K::Compensating))
        .filter_map(|e| e.reason.clone())
        .take(3)
        .collect();
    eprintln!(
        "crew kill: {straddling} crews in flight at the kill; {completed} of {sagas} completed, \
         {cancels} cancels; others: {why:#?}"
    );
    assert_eq!(
        completed, sagas as usize,
        "agents never fail here: {why:#?}"
    );
    assert_eq!(
        cancels, sagas as usize,
        "one cancel per crew, the third branch's"
    );
    assert!(second.stop().success());
}
