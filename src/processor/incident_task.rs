//! The processor of one incident partition (docs/KEYS.md): the anomaly chain, the correlation
//! window and the saga, in one task and so in one transaction.
//!
//! For each anomaly:
//! 1. If its correlation key belongs to another partition, it is re-keyed to that partition
//!    and nothing else happens here (the owner processes it one transaction later).
//! 2. Validate, enrich, assess and route it ([`AnomalyRouter`]).
//! 3. Correlate it ([`IncidentStore`]): it opens an incident, or joins the key's open one.
//! 4. An incident's first anomaly starts its saga (or, with sagas off, gets its command); every
//!    later one is written as a `CorrelationEvent` (and joins the saga). So each valid anomaly
//!    ends on an output topic: in a command, in a correlation event, or in a dead letter.

use prometheus::IntCounter;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Canary, CorrelationConfig};
use crate::model::{AgentCommand, AgentType, CorrelationEvent, TdaAnomaly};
use crate::runtime::partitioner::partition_for;

use super::dispatch::Dispatcher;
use super::incidents::{Correlation, IncidentStore, INCIDENT_STORE};
use super::{
    AnomalyRouter, Event, Output, ProcessError, Processor, SagaProcessor, Unreadable, SAGA_STORE,
};

/// How often closed incidents are swept from the store.
const EXPIRY_EVERY_MS: i64 = 1_000;

/// Which partition this task owns, of how many: a correlation key `k` is at home here when
/// `murmur2(k) % partitions == partition`, Kafka's default partitioner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Home {
    pub partition: i32,
    pub partitions: i32,
}

impl Home {
    pub fn owns(&self, key: &str) -> bool {
        partition_for(key.as_bytes(), self.partitions) == self.partition
    }
}

pub struct IncidentTask {
    home: Home,
    router: AnomalyRouter,
    correlation: CorrelationConfig,
    incidents: IncidentStore,
    /// `None` with sagas off: an incident's first anomaly then gets its command directly.
    sagas: Option<SagaProcessor>,
    /// Shared by the instance's tasks: picks each command's agent by load.
    dispatcher: Arc<Dispatcher>,
    canaries: Vec<Canary>,
    /// Anomalies that arrived in another key's partition.
    rekeyed: IntCounter,
    next_expiry_ms: i64,
}

/// What an incident task is built from, besides its partition.
pub struct IncidentTaskParts {
    pub router: AnomalyRouter,
    pub correlation: CorrelationConfig,
    pub sagas: Option<SagaProcessor>,
    pub dispatcher: Arc<Dispatcher>,
    pub canaries: Vec<Canary>,
    pub rekeyed: IntCounter,
}

impl IncidentTask {
    pub fn new(home: Home, parts: IncidentTaskParts) -> Self {
        Self {
            home,
            router: parts.router,
            correlation: parts.correlation,
            incidents: IncidentStore::default(),
            sagas: parts.sagas,
            dispatcher: parts.dispatcher,
            canaries: parts.canaries,
            rekeyed: parts.rekeyed,
            next_expiry_ms: i64::MIN,
        }
    }

    /// Picks the agent of every command pushed to `out` from `from` on.
    fn dispatch(&self, out: &mut [Output], from: usize) {
        for o in &mut out[from..] {
            if let Output::Command(c) = o {
                self.dispatcher.assign(c);
            }
        }
    }

    /// The canary workflow this incident runs instead of its routed one, if a canary flag
    /// applies to its correlation key.
    fn canary(&self, command: &mut AgentCommand) {
        let engine = self.router.engine();
        for c in &self.canaries {
            if c.workflow == command.workflow
                && engine.flag_state(&c.flag, &command.correlation_id) == Some(true)
            {
                command.explanation.push_str(&format!(
                    "; canary: workflow {} instead of {} (flag {})",
                    c.canary, c.workflow, c.flag
                ));
                command.workflow = c.canary.clone();
                return;
            }
        }
    }

    fn on_anomaly(
        &mut self,
        anomaly: TdaAnomaly,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        if !self.home.owns(&anomaly.correlation_id) {
            self.rekeyed.inc();
            out.push(Output::Rekeyed(anomaly));
            return Ok(());
        }
        let (detected_at, source) = (anomaly.detected_at, anomaly.source.clone());
        let diagram = anomaly.diagram.clone();
        let (mut command, overrides) = self.router.route_with_overrides(anomaly, now_ms)?;
        let key = command.correlation_id.clone();
        let (correlation, record) = self.incidents.observe(
            &self.correlation,
            self.router.engine().sliced_wasserstein(),
            &key,
            detected_at,
            &diagram,
        );
        out.push(Output::State {
            store: INCIDENT_STORE,
            key: key.clone(),
            value: Some(record),
        });
        match correlation {
            Correlation::Opened { incident_id } => {
                command.saga_id = incident_id;
                self.canary(&mut command);
                self.start(command, overrides, now_ms, out)
            }
            Correlation::Joined {
                incident_id,
                distance,
                window_start,
                window_end,
            } => {
                out.push(Output::Correlation(CorrelationEvent {
                    incident_id: incident_id.clone(),
                    correlation_id: key,
                    anomaly_ids: command.anomaly_ids.clone(),
                    sources: vec![source],
                    distance,
                    score: 1.0 / (1.0 + distance),
                    window_start,
                    window_end,
                    at: now_ms,
                }));
                command.saga_id = incident_id;
                match &mut self.sagas {
                    Some(sagas) => sagas.on_incident(command, overrides, now_ms, out),
                    None => Ok(()),
                }
            }
        }
    }

    fn start(
        &mut self,
        command: AgentCommand,
        overrides: BTreeMap<String, AgentType>,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        match &mut self.sagas {
            Some(sagas) => sagas.on_incident(command, overrides, now_ms, out),
            None => {
                out.push(Output::Command(command));
                Ok(())
            }
        }
    }
}

impl Processor for IncidentTask {
    fn name(&self) -> &'static str {
        "incidents"
    }

    fn process(
        &mut self,
        event: Event,
        now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        let from = out.len();
        let result = match (event, &mut self.sagas) {
            (Event::Anomaly(a), _) => self.on_anomaly(a, now_ms, out),
            (Event::AgentResult(r), Some(sagas)) => {
                self.dispatcher.answered(&r.agent_id);
                sagas.process(Event::AgentResult(r), now_ms, out)
            }
            (Event::AgentResult(r), None) => Err(ProcessError::Failed(format!(
                "result for saga {} arrived, but sagas are off",
                r.saga_id
            ))),
            (Event::AgentVote(v), Some(sagas)) => {
                self.dispatcher.answered(&v.agent_id);
                sagas.process(Event::AgentVote(v), now_ms, out)
            }
            (Event::AgentVote(v), None) => Err(ProcessError::Failed(format!(
                "vote for saga {} arrived, but sagas are off",
                v.saga_id
            ))),
            // Feedback has its own sub-topology (`Learner`); it never shares a task with incidents.
            (Event::Feedback(f), _) => Err(ProcessError::Failed(format!(
                "feedback on {} reached an incident task",
                f.anomaly_id
            ))),
        };
        self.dispatch(out, from);
        result
    }

    fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if let Some(sagas) = &mut self.sagas {
            let from = out.len();
            sagas.on_tick(now_ms, out);
            self.dispatch(out, from);
        }
        if now_ms >= self.next_expiry_ms {
            self.next_expiry_ms = now_ms.saturating_add(EXPIRY_EVERY_MS);
            for key in self.incidents.expire(now_ms) {
                out.push(Output::State {
                    store: INCIDENT_STORE,
                    key,
                    value: None,
                });
            }
        }
    }

    fn stores(&self) -> &'static [&'static str] {
        if self.sagas.is_some() {
            &[INCIDENT_STORE, SAGA_STORE]
        } else {
            &[INCIDENT_STORE]
        }
    }

    fn restore(&mut self, store: &str, key: &str, value: Option<&[u8]>) {
        // Unreadable records are only reported through `try_restore`.
        let _ = self.try_restore(store, key, value);
    }

    fn try_restore(
        &mut self,
        store: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), Unreadable> {
        match (store, &mut self.sagas) {
            (INCIDENT_STORE, _) => self
                .incidents
                .restore(&self.correlation, key, value)
                .map_err(|e| Unreadable(format!("not an incident store record: {e}"))),
            (SAGA_STORE, Some(sagas)) => {
                sagas.restore(store, key, value);
                match value {
                    // The saga store drops a record it cannot read without saying why; only
                    // then is the record decoded again, for the reason.
                    Some(v) if sagas.store().record(key).is_none() => {
                        match serde_json::from_slice::<crate::saga::SagaState>(v) {
                            Err(e) => Err(Unreadable(format!("not a saga state: {e}"))),
                            Ok(_) => Ok(()),
                        }
                    }
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn query(&self, store: &str, key: &str) -> Option<serde_json::Value> {
        match (store, &self.sagas) {
            (INCIDENT_STORE, _) => self
                .incidents
                .open(key)
                .map(|open| serde_json::json!({ "correlation_id": key, "open": open })),
            (SAGA_STORE, Some(sagas)) => sagas.query(store, key),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{PersistencePoint, Severity};
    use crate::processor::RouterSettings;
    use crate::saga::{SagaConfig, SagaEngine, Workflows};
    use crate::semantic::{Engine, PatternLibrary, SemanticConfig};
    use crate::telemetry::Metrics;

    const T0: i64 = 1_700_000_000_000;

    fn anomaly(id: &str, key: &str, at: i64) -> TdaAnomaly {
        TdaAnomaly {
            anomaly_id: id.into(),
            correlation_id: key.into(),
            source: "svc-a".into(),
            detected_at: at,
            anomaly_score: 0.7,
            severity: Severity::High,
            betti: vec![1, 1],
            diagram: vec![PersistencePoint {
                dimension: 1,
                birth: 0.1,
                death: 0.9,
            }],
            signature: vec![],
            tags: vec!["latency".into()],
            entities: vec!["svc-a".into()],
            attributes: Default::default(),
        }
    }

    fn task(sagas: bool, home: Home) -> IncidentTask {
        let m = Metrics::new();
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let router = AnomalyRouter::new(RouterSettings::default(), Arc::default(), engine);
        let sagas = sagas.then(|| {
            let workflows = Arc::new(Workflows::builtin().unwrap());
            let engine = Arc::new(SagaEngine::new(workflows, SagaConfig::default()));
            SagaProcessor::new(engine, &m.sagas)
        });
        let dispatcher = Arc::new(Dispatcher::new(router.engine_arc()));
        IncidentTask::new(
            home,
            IncidentTaskParts {
                router,
                correlation: CorrelationConfig::default(),
                sagas,
                dispatcher,
                canaries: vec![],
                rekeyed: IntCounter::new("rekeyed", "test").unwrap(),
            },
        )
    }

    const ONE: Home = Home {
        partition: 0,
        partitions: 1,
    };

    fn commands(out: &[Output]) -> Vec<&AgentCommand> {
        out.iter()
            .filter_map(|o| match o {
                Output::Command(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    fn correlations(out: &[Output]) -> Vec<&CorrelationEvent> {
        out.iter()
            .filter_map(|o| match o {
                Output::Correlation(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_anomaly_of_a_storm_is_in_one_command_or_one_correlation_event() {
        for sagas in [false, true] {
            let mut t = task(sagas, ONE);
            let mut out = Vec::new();
            for i in 0..50 {
                let a = anomaly(&format!("a-{i}"), "checkout", T0 + i * 20_000);
                t.process(Event::Anomaly(a), T0 + i * 20_000, &mut out)
                    .unwrap();
            }
            let commands = commands(&out);
            assert_eq!(
                commands.len(),
                1,
                "sagas {sagas}: one incident, one first command"
            );
            assert_eq!(commands[0].anomaly_ids, vec!["a-0".to_string()]);
            assert_eq!(commands[0].saga_id, format!("checkout@{T0}"));
            assert_eq!(commands[0].partition_key, "checkout");
            let joined: Vec<&String> = correlations(&out)
                .iter()
                .flat_map(|c| &c.anomaly_ids)
                .collect();
            assert_eq!(joined.len(), 49, "sagas {sagas}");
            assert!(correlations(&out)
                .iter()
                .all(|c| c.incident_id == format!("checkout@{T0}")));
        }
    }

    #[test]
    fn an_anomaly_of_another_partitions_key_is_rekeyed_and_nothing_else() {
        let home = Home {
            partition: 0,
            partitions: 6,
        };
        let key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| !home.owns(k))
            .unwrap();
        let mut t = task(true, home);
        let mut out = Vec::new();
        t.process(Event::Anomaly(anomaly("a-1", &key, T0)), T0, &mut out)
            .unwrap();
        assert!(matches!(out.as_slice(), [Output::Rekeyed(a)] if a.correlation_id == key));
    }

    #[test]
    fn incidents_are_changelogged_restored_and_expired() {
        let mut t = task(false, ONE);
        let mut out = Vec::new();
        t.process(Event::Anomaly(anomaly("a-1", "k", T0)), T0, &mut out)
            .unwrap();
        let record = out
            .iter()
            .find_map(|o| match o {
                Output::State { store, value, .. } if *store == INCIDENT_STORE => value.clone(),
                _ => None,
            })
            .unwrap();
        let mut restored = task(false, ONE);
        restored.restore(INCIDENT_STORE, "k", Some(&record));
        let mut out = Vec::new();
        restored
            .process(
                Event::Anomaly(anomaly("a-2", "k", T0 + 1)),
                T0 + 1,
                &mut out,
            )
            .unwrap();
        assert_eq!(commands(&out).len(), 0, "joined the restored incident");
        assert_eq!(correlations(&out).len(), 1);

        let mut out = Vec::new();
        let gap = CorrelationConfig::default().gap_ms;
        restored.on_tick(T0 + 1 + gap, &mut out);
        assert!(out.iter().any(|o| matches!(o,
            Output::State { store, key, value: None } if *store == INCIDENT_STORE && key == "k")));
    }

    #[test]
    fn an_unreadable_changelog_record_is_refused_with_its_reason_and_drops_its_key() {
        let mut t = task(true, ONE);
        let mut out = Vec::new();
        t.process(Event::Anomaly(anomaly("a-1", "k", T0)), T0, &mut out)
            .unwrap();
        let state = |store: &str| {
            out.iter()
                .find_map(|o| match o {
                    Output::State {
                        store: s,
                        key,
                        value: Some(v),
                    } if *s == store => Some((key.clone(), v.clone())),
                    _ => None,
                })
                .unwrap()
        };
        let (incident_key, incident) = state(INCIDENT_STORE);
        let (saga_id, saga) = state(SAGA_STORE);

        let mut restored = task(true, ONE);
        assert_eq!(
            restored.try_restore(INCIDENT_STORE, &incident_key, Some(&incident)),
            Ok(())
        );
        assert_eq!(
            restored.try_restore(SAGA_STORE, &saga_id, Some(&saga)),
            Ok(())
        );
        assert_eq!(restored.try_restore(SAGA_STORE, "gone", None), Ok(()));
        let refused = restored.try_restore(INCIDENT_STORE, &incident_key, Some(b"{\"open\": 7}"));
        assert!(refused
            .unwrap_err()
            .0
            .starts_with("not an incident store record"));
        assert!(
            restored.query(INCIDENT_STORE, &incident_key).is_none(),
            "the key is dropped"
        );
        // A saga record whose header reads but whose body does not (another version's).
        let other_version = br#"{"saga_id":"s-9","status":"Running"}"#;
        let refused = restored.try_restore(SAGA_STORE, "s-9", Some(other_version));
        assert!(refused.unwrap_err().0.starts_with("not a saga state"));
        let refused = restored.try_restore(SAGA_STORE, &saga_id, Some(b"\xff"));
        assert!(refused.is_err());
        assert!(
            restored.query(SAGA_STORE, &saga_id).is_none(),
            "the key is dropped"
        );
    }
}
