//! The saga state machine on the shipped workflows, fed a random sequence of starts, joins,
//! agent results (for real commands and made-up ones, any status, step or attempt), timer
//! firings at random times, and restores from its own changelog records. Never panics; every
//! saga it holds stays readable; a restore gives back the same sagas.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use aura::model::{AgentCommand, AgentResult, AgentType, Coordination, Layer, ResultStatus};
use aura::saga::{SagaConfig, SagaEngine, SagaStart, SagaStore, Workflows};
use libfuzzer_sys::fuzz_target;

fn engine() -> &'static (SagaEngine, Vec<String>) {
    static ENGINE: OnceLock<(SagaEngine, Vec<String>)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../topologies/workflows");
        let workflows = Workflows::load_dir(dir).expect("the shipped workflows load");
        let names = workflows.names().map(str::to_string).collect();
        (SagaEngine::new(Arc::new(workflows), SagaConfig::default()), names)
    })
}

#[derive(Arbitrary, Debug)]
enum Op {
    Start { saga: u8, workflow: u8, urgency: f64, complexity: f64 },
    Join { saga: u8, anomaly: u8 },
    Answer { command: u16, succeeded: bool, same_attempt: bool, output: Vec<(String, String)> },
    Stray { saga: u8, step: String, attempt: i32, succeeded: bool },
    Advance { ms: u32 },
    Restore,
}

fuzz_target!(|data: &[u8]| {
    let (engine, names) = engine();
    let mut u = Unstructured::new(data);
    let mut store = SagaStore::new();
    let mut now: i64 = 1_000_000;
    let mut commands: Vec<AgentCommand> = Vec::new();
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else { return };
    for op in ops.into_iter().take(200) {
        match op {
            Op::Start { saga, workflow, urgency, complexity } => {
                let req = SagaStart {
                    saga_id: format!("c{saga}@1"),
                    correlation_id: format!("c{saga}"),
                    workflow: names[workflow as usize % names.len()].clone(),
                    anomaly_ids: vec![format!("a{saga}")],
                    pattern_id: None,
                    layer: Layer::Operational,
                    coordination: Coordination::Pipeline,
                    urgency,
                    complexity,
                    explanation: String::new(),
                    attributes: HashMap::new(),
                    agent_overrides: BTreeMap::new(),
                };
                if let Ok(fx) = store.start_or_join(engine, req, now) {
                    commands.extend(fx.commands().cloned());
                }
            }
            Op::Join { saga, anomaly } => {
                let req = SagaStart {
                    saga_id: format!("c{saga}@1"),
                    correlation_id: format!("c{saga}"),
                    workflow: names[0].clone(),
                    anomaly_ids: vec![format!("j{anomaly}")],
                    pattern_id: None,
                    layer: Layer::Operational,
                    coordination: Coordination::Pipeline,
                    urgency: 0.5,
                    complexity: 0.5,
                    explanation: String::new(),
                    attributes: HashMap::new(),
                    agent_overrides: BTreeMap::new(),
                };
                let _ = store.start_or_join(engine, req, now);
            }
            Op::Answer { command, succeeded, same_attempt, output } => {
                let Some(c) = commands.get(command as usize % commands.len().max(1)) else { continue };
                let r = AgentResult {
                    command_id: c.command_id.clone(),
                    saga_id: c.saga_id.clone(),
                    correlation_id: c.correlation_id.clone(),
                    step: c.step.clone(),
                    attempt: if same_attempt { c.attempt } else { c.attempt + 1 },
                    agent_id: "fuzz".into(),
                    agent_type: c.agent_type,
                    status: if succeeded { ResultStatus::Succeeded } else { ResultStatus::Failed },
                    output: output.into_iter().collect(),
                    error: None,
                    finished_at: now,
                    proof: None,
                };
                commands.extend(store.on_result(engine, &r, now).commands().cloned());
            }
            Op::Stray { saga, step, attempt, succeeded } => {
                let r = AgentResult {
                    command_id: format!("stray-{saga}"),
                    saga_id: format!("c{saga}@1"),
                    correlation_id: format!("c{saga}"),
                    step,
                    attempt,
                    agent_id: "fuzz".into(),
                    agent_type: AgentType::Observer,
                    status: if succeeded { ResultStatus::Succeeded } else { ResultStatus::Failed },
                    output: HashMap::new(),
                    error: Some("fuzz".into()),
                    finished_at: now,
                    proof: None,
                };
                commands.extend(store.on_result(engine, &r, now).commands().cloned());
            }
            Op::Advance { ms } => {
                now += i64::from(ms);
                for (_, fx) in store.fire_due(engine, now) {
                    commands.extend(fx.commands().cloned());
                }
            }
            Op::Restore => {
                let records: Vec<Vec<u8>> = store
                    .iter()
                    .map(|s| store.record(&s.saga_id).unwrap().to_vec())
                    .collect();
                let mut restored = SagaStore::new();
                for r in &records {
                    restored.insert_record(r).expect("the store's own records restore");
                }
                assert_eq!(restored.len(), store.len());
                store = restored;
            }
        }
        for saga in store.iter() {
            assert!(store.get(&saga.saga_id).is_some());
        }
    }
});
