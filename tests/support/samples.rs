//! One realistic value of every model type, for codec tests and benches.
//! Included with `#[path]`, so each user compiles only what it calls.
#![allow(dead_code)]

use std::collections::HashMap;

use aura::model::*;

pub const NOW: i64 = 1_767_225_600_000;

fn map<V: Clone>(pairs: &[(&str, V)]) -> HashMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub fn diagram() -> Vec<PersistencePoint> {
    (0..12)
        .map(|i| PersistencePoint {
            dimension: i % 3,
            birth: f64::from(i) * 0.1,
            death: f64::from(i) * 0.1 + 0.05 + f64::from(i % 4) * 0.2,
        })
        .collect()
}

pub fn anomaly() -> TdaAnomaly {
    TdaAnomaly {
        anomaly_id: "a-0001".into(),
        correlation_id: "payments-api".into(),
        source: "payments-api/prod-eu-1".into(),
        detected_at: NOW,
        anomaly_score: 0.87,
        severity: Severity::High,
        betti: vec![1, 3, 0],
        diagram: diagram(),
        signature: (0..16).map(|i| i as f32 / 16.0).collect(),
        tags: strings(&["memory", "heap", "gc-pause"]),
        entities: strings(&["pod/payments-7d9f", "node/ip-10-0-3-17"]),
        attributes: map(&[
            ("cluster", "prod-eu-1".to_string()),
            ("team", "payments".to_string()),
        ]),
    }
}

pub fn context() -> TdaContext {
    TdaContext {
        source: "payments-api/prod-eu-1".into(),
        baseline_betti: vec![1, 1, 0],
        baseline_diagram: diagram(),
        baseline_entropy: 0.42,
        baseline_total_persistence: 3.5,
        pattern_confidence: map(&[("memory-leak", 0.7), ("ddos", 0.1)]),
        attributes: map(&[("tier", "1".to_string())]),
        updated_at: NOW - 60_000,
    }
}

pub fn result() -> AgentResult {
    AgentResult {
        command_id: "c-0001".into(),
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        step: "collect".into(),
        attempt: 1,
        agent_id: "observer-1".into(),
        agent_type: AgentType::Observer,
        status: ResultStatus::Failed,
        output: map(&[("heap_mb", "1843".to_string())]),
        error: Some("telemetry endpoint timed out".into()),
        finished_at: NOW + 1_500,
    }
}

pub fn vote() -> AgentVote {
    AgentVote {
        vote_id: "v-0001".into(),
        saga_id: "s-0001".into(),
        step: "approve-rollback".into(),
        agent_id: "supervisor-2".into(),
        agent_type: AgentType::Supervisor,
        choice: "rollback".into(),
        weight: 2.0,
        reason: "error budget exhausted".into(),
        cast_at: NOW + 3_000,
    }
}

pub fn registration() -> AgentRegistration {
    AgentRegistration {
        agent_id: "analyst-3".into(),
        agent_type: AgentType::Analyst,
        capabilities: strings(&["root-cause", "memory"]),
        capacity: 8,
        status: AgentStatus::Draining,
        updated_at: NOW,
    }
}

pub fn feedback() -> RoutingFeedback {
    RoutingFeedback {
        anomaly_id: "a-0001".into(),
        pattern: Some("memory-leak".into()),
        agent_type: Some(AgentType::Analyst),
        coordination: None,
        layer: Some(Layer::Tactical),
        anomaly: Some(anomaly()),
        confirmed_by: "oncall@example.com".into(),
        at: NOW + 3_600_000,
    }
}

pub fn flag() -> FeatureFlag {
    FeatureFlag {
        name: "routing.consensus".into(),
        enabled: true,
        rollout_percent: 25.0,
        updated_at: NOW,
    }
}

pub fn command() -> AgentCommand {
    AgentCommand {
        command_id: "c-0001".into(),
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        anomaly_ids: strings(&["a-0001", "a-0002"]),
        workflow: "investigate-memory".into(),
        step: "collect".into(),
        agent_type: AgentType::Observer,
        action: "collect-telemetry".into(),
        layer: Layer::Operational,
        coordination: Coordination::FanOut,
        pattern_id: Some("memory-leak".into()),
        urgency: 0.91,
        complexity: 0.44,
        attempt: 1,
        deadline: NOW + 30_000,
        explanation: "pattern memory-leak (0.82); urgency 0.91 = severity 0.75 + score 0.87, amplified x1.3 by baseline departure; 2 entities -> fan-out".into(),
        attributes: map(&[("team", "payments".to_string()), ("tier", "1".to_string())]),
        issued_at: NOW + 12,
        partition_key: "payments-api".into(),
    }
}

pub fn saga_event() -> SagaEvent {
    SagaEvent {
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        workflow: "investigate-memory".into(),
        kind: SagaEventKind::RetryScheduled,
        step: Some("collect".into()),
        command_id: Some("c-0001".into()),
        attempt: 1,
        reason: Some("telemetry endpoint timed out".into()),
        retry_at: Some(NOW + 4_000),
        at: NOW + 1_600,
    }
}

pub fn compensation() -> CompensationCommand {
    CompensationCommand {
        command_id: "k-0001".into(),
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        compensates_command_id: "c-0003".into(),
        step: "scale-out".into(),
        agent_type: AgentType::Supervisor,
        action: "scale-in".into(),
        attempt: 1,
        reason: "step remediate failed after 5 attempts".into(),
        issued_at: NOW + 90_000,
        partition_key: "payments-api".into(),
    }
}

pub fn correlation() -> CorrelationEvent {
    CorrelationEvent {
        incident_id: "i-0001".into(),
        correlation_id: "payments-api".into(),
        anomaly_ids: strings(&["a-0001", "a-0002", "a-0003"]),
        sources: strings(&["payments-api/prod-eu-1", "ledger/prod-eu-1"]),
        distance: 0.12,
        score: 0.88,
        window_start: NOW - 60_000,
        window_end: NOW,
        at: NOW + 5,
    }
}

pub fn escalation() -> Escalation {
    Escalation {
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        step: None,
        from_layer: Layer::Operational,
        to_layer: Layer::Tactical,
        reason: "consensus tied 2.0 to 2.0".into(),
        at: NOW + 10_000,
    }
}

pub fn decision() -> ConsensusDecision {
    ConsensusDecision {
        decision_id: "d-0001".into(),
        saga_id: "s-0001".into(),
        correlation_id: "payments-api".into(),
        step: "approve-rollback".into(),
        outcome: ConsensusOutcome::Agreed,
        choice: Some("rollback".into()),
        tally: map(&[("rollback", 3.0), ("wait", 1.0)]),
        votes_cast: 3,
        quorum: 2,
        voters: strings(&["supervisor-1", "supervisor-2", "analyst-3"]),
        at: NOW + 9_000,
    }
}

pub fn dead_letter() -> DeadLetter {
    DeadLetter {
        reason: "record has no Confluent magic byte (first byte 0x7b)".into(),
        error_class: "no_magic_byte".into(),
        stage: DeadLetterStage::Decode,
        topic: "tda.anomalies".into(),
        partition: 3,
        offset: 1_234_567,
        key: Some(b"payments-api".to_vec()),
        value: Some(b"{\"not\":\"avro\"}".to_vec()),
        at: NOW,
    }
}
