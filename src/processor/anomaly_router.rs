//! The stateless chain for anomalies: validate, enrich, assess (pattern, urgency, complexity,
//! route: the semantic engine), and emit one `AgentCommand` that explains itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::ValidationConfig;
use crate::model::{AgentCommand, AgentType, TdaAnomaly, TdaContext};
use crate::semantic::Engine;
use crate::table::Table;

use super::enrich::enrich;
use super::{validate, ProcessError};

/// Settings of the chain that are not validation limits.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    pub validation: ValidationConfig,
    /// How long an agent has to act on a command.
    pub command_deadline_ms: i64,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self {
            validation: ValidationConfig::default(),
            command_deadline_ms: 60 * 1000,
        }
    }
}

/// Turns a valid anomaly into the command for the agent best suited to it. The incident it
/// belongs to (and so its `saga_id`) is decided after, by correlation ([`super::IncidentTask`]).
pub struct AnomalyRouter {
    settings: RouterSettings,
    contexts: Arc<Table<TdaContext>>,
    engine: Arc<Engine>,
}

/// What an agent of each type is first asked to do.
fn first_action(agent: AgentType) -> &'static str {
    match agent {
        AgentType::Observer => "collect_telemetry",
        AgentType::Analyst => "analyze",
        AgentType::Supervisor => "remediate",
    }
}

impl AnomalyRouter {
    pub fn new(
        settings: RouterSettings,
        contexts: Arc<Table<TdaContext>>,
        engine: Arc<Engine>,
    ) -> Self {
        Self {
            settings,
            contexts,
            engine,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn engine_arc(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Validates, enriches and assesses the anomaly: the routed command, with an empty
    /// `saga_id` for the incident to fill in.
    pub fn route(&self, anomaly: TdaAnomaly, now_ms: i64) -> Result<AgentCommand, ProcessError> {
        Ok(self.route_with_overrides(anomaly, now_ms)?.0)
    }

    /// [`AnomalyRouter::route`], and the steps whose agent type the registry made routing
    /// change (by step name), for the saga to follow.
    pub fn route_with_overrides(
        &self,
        anomaly: TdaAnomaly,
        now_ms: i64,
    ) -> Result<(AgentCommand, BTreeMap<String, AgentType>), ProcessError> {
        crate::stage_span!("validate")
            .in_scope(|| validate(&anomaly, &self.settings.validation, now_ms))?;
        Ok(self.command_for(anomaly, now_ms))
    }

    fn command_for(
        &self,
        anomaly: TdaAnomaly,
        now_ms: i64,
    ) -> (AgentCommand, BTreeMap<String, AgentType>) {
        let enriched = crate::stage_span!("enrich").in_scope(|| enrich(anomaly, &self.contexts));
        let assessment = crate::stage_span!("assess").in_scope(|| {
            self.engine
                .assess(&enriched.anomaly, enriched.context.as_deref(), now_ms)
        });
        let _route = crate::stage_span!("route").entered();
        let a = enriched.anomaly;
        let route = assessment.route;
        let mut attributes = enriched
            .context
            .as_ref()
            .map(|c| c.attributes.clone())
            .unwrap_or_default();
        attributes.extend(a.attributes.clone());
        attributes.insert("source".into(), a.source.clone());
        attributes.insert("confidence".into(), format!("{:.3}", assessment.confidence));
        attributes.insert(
            "library_version".into(),
            assessment.library_version.to_string(),
        );
        let step = "step-1";
        let overrides = route.reassigned.iter().cloned().collect();
        let command = AgentCommand {
            command_id: format!("{}/{step}/1", a.anomaly_id),
            saga_id: String::new(),
            partition_key: a.correlation_id.clone(),
            agent_id: None,
            correlation_id: a.correlation_id,
            anomaly_ids: vec![a.anomaly_id],
            workflow: route.workflow,
            step: step.into(),
            agent_type: route.agent_type,
            action: first_action(route.agent_type).into(),
            layer: route.layer,
            coordination: route.coordination,
            pattern_id: assessment.pattern_id,
            urgency: assessment.urgency,
            complexity: assessment.complexity,
            attempt: 1,
            deadline: now_ms + self.settings.command_deadline_ms,
            explanation: assessment.explanation,
            attributes,
            issued_at: now_ms,
            proof: None,
        };
        (command, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coordination, PersistencePoint, Severity};
    use crate::semantic::{PatternLibrary, SemanticConfig};

    fn anomaly(entities: &[&str], severity: Severity) -> TdaAnomaly {
        TdaAnomaly {
            anomaly_id: "a-1".into(),
            correlation_id: "checkout".into(),
            source: "svc-a".into(),
            detected_at: 600_000,
            anomaly_score: 0.9,
            severity,
            betti: vec![1, 1],
            diagram: vec![PersistencePoint {
                dimension: 1,
                birth: 0.1,
                death: 0.9,
            }],
            signature: vec![],
            tags: vec!["latency".into()],
            entities: entities.iter().map(|e| e.to_string()).collect(),
            attributes: Default::default(),
        }
    }

    fn run(a: TdaAnomaly, contexts: Arc<Table<TdaContext>>) -> Result<AgentCommand, ProcessError> {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        AnomalyRouter::new(RouterSettings::default(), contexts, engine).route(a, 600_000)
    }

    #[test]
    fn a_valid_anomaly_gives_one_complete_explained_command() {
        let c = run(anomaly(&["svc-a"], Severity::Low), Default::default()).unwrap();
        assert_eq!(c.anomaly_ids, vec!["a-1".to_string()]);
        assert_eq!(c.partition_key, "checkout");
        assert!(!c.workflow.is_empty() && !c.explanation.is_empty());
        assert!((0.0..=1.0).contains(&c.urgency) && (0.0..=1.0).contains(&c.complexity));
        assert_eq!(c.deadline, 660_000);
    }

    #[test]
    fn several_entities_do_not_route_as_a_plain_pipeline_when_confident() {
        let c = run(
            anomaly(&["a", "b", "c"], Severity::Critical),
            Default::default(),
        )
        .unwrap();
        if c.pattern_id.is_some()
            && c.complexity <= 0.8
            && c.coordination != Coordination::Consensus
        {
            assert_eq!(c.coordination, Coordination::FanOut, "{}", c.explanation);
        }
    }

    #[test]
    fn the_context_table_row_is_joined_onto_the_command() {
        let contexts: Arc<Table<TdaContext>> = Default::default();
        contexts.apply(
            "svc-a".into(),
            Some(TdaContext {
                source: "svc-a".into(),
                baseline_betti: vec![1, 0],
                baseline_diagram: vec![],
                baseline_entropy: 0.0,
                baseline_total_persistence: 0.1,
                pattern_confidence: Default::default(),
                attributes: [("team".to_string(), "payments".to_string())].into(),
                updated_at: 0,
            }),
        );
        let c = run(anomaly(&["a"], Severity::Low), contexts).unwrap();
        assert_eq!(
            c.attributes.get("team").map(String::as_str),
            Some("payments")
        );
    }

    #[test]
    fn an_invalid_anomaly_is_refused_with_its_reason() {
        let mut a = anomaly(&["a"], Severity::Low);
        a.anomaly_score = 2.0;
        let err = run(a, Default::default()).unwrap_err();
        assert!(matches!(err, ProcessError::Invalid(_)));
    }
}
