//! Learning from `orchestration.feedback`: each confirmed `RoutingFeedback` updates the shared pattern
//! library online, and the pattern it changed is written to the patterns changelog in the same
//! transaction as the feedback's offset (`semantic::learned`: a global table, last write wins).
//!
//! Feedback is keyed by anomaly id, not by correlation key, so it has a sub-topology of its own: no
//! incident state is needed to learn, only the engine every task shares.
//!
//! The engine learns in memory before the transaction commits. If the transaction aborts (a
//! rebalance, a crash), the feedback is processed again, by this instance or another, but the
//! engine that already learned it now finds nothing new. So every usable feedback writes its
//! pattern's whole current state, changed or not: the changelog always catches up with memory, and
//! a repeated write of the same state changes nothing anywhere (a trickle of confirmations, so
//! the extra records cost nothing worth saving).

use std::sync::Arc;

use super::{Event, Output, ProcessError, Processor};
use crate::model::RoutingFeedback;
use crate::semantic::learned::PATTERNS_STORE;
use crate::semantic::Engine;

/// Learns from feedback with the engine that every partition task routes with.
pub struct Learner {
    engine: Arc<Engine>,
}

impl Learner {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

/// Feedback that can never teach anything breaks the topic's contract: say why, in a dead letter.
fn unusable(f: &RoutingFeedback) -> Option<String> {
    let missing = |what: &str| {
        Some(format!(
            "feedback on {:?} has no {what}; learning needs the confirmed pattern, the anomaly and who confirmed it",
            f.anomaly_id
        ))
    };
    if f.anomaly_id.is_empty() {
        return missing("anomaly_id");
    }
    if f.pattern.as_deref().is_none_or(str::is_empty) {
        return missing("pattern");
    }
    if f.anomaly.as_ref().is_none_or(|a| a.diagram.is_empty()) {
        return missing("anomaly with a diagram");
    }
    if f.confirmed_by.trim().is_empty() {
        return missing("confirmed_by");
    }
    None
}

impl Processor for Learner {
    fn name(&self) -> &'static str {
        "learner"
    }

    fn process(
        &mut self,
        event: Event,
        _now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        let Event::Feedback(feedback) = event else {
            return Err(ProcessError::Failed(format!(
                "only feedback is learned from, got {event:?}"
            )));
        };
        if let Some(why) = unusable(&feedback) {
            return Err(ProcessError::Failed(why));
        }
        let pattern = feedback.pattern.as_deref().unwrap_or_default();
        let source = feedback.anomaly.as_ref().map_or("", |a| a.source.as_str());
        // Learning off (config or flag): the feedback is consumed and nothing is written.
        if !self.engine.learning_on(source) {
            return Ok(());
        }
        let learned = self
            .engine
            .learn(&feedback)
            .or_else(|| self.engine.learned_pattern(pattern));
        // None: a new pattern past `max_new_patterns`; nothing to write.
        if let Some(learned) = learned {
            out.push(Output::GlobalState {
                store: PATTERNS_STORE,
                key: learned.pattern.name.clone(),
                value: Some(learned.to_bytes()),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::archetypes::scenario;
    use crate::semantic::learned::LearnedPattern;
    use crate::semantic::{PatternLibrary, SemanticConfig};

    fn feedback() -> RoutingFeedback {
        let anomaly = scenario("ddos", 5, 0.3).unwrap().next().unwrap().anomaly;
        RoutingFeedback {
            anomaly_id: anomaly.anomaly_id.clone(),
            pattern: Some("memory-leak".into()),
            agent_type: None,
            coordination: None,
            layer: None,
            anomaly: Some(anomaly),
            confirmed_by: "ops".into(),
            at: 0,
        }
    }

    #[test]
    fn confirmed_feedback_writes_the_changed_pattern_to_the_global_changelog() {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let mut learner = Learner::new(engine.clone());
        let mut out = Vec::new();
        learner
            .process(Event::Feedback(feedback()), 0, &mut out)
            .unwrap();
        let [Output::GlobalState { store, key, value }] = out.as_slice() else {
            panic!("one changelog write expected, got {out:?}");
        };
        assert_eq!((*store, key.as_str()), (PATTERNS_STORE, "memory-leak"));
        let record = LearnedPattern::from_bytes(key, value.as_deref().unwrap()).unwrap();
        assert_eq!(
            Some(&record.pattern),
            engine.library().pattern("memory-leak")
        );
    }

    #[test]
    fn feedback_learned_before_an_aborted_transaction_is_written_when_processed_again() {
        let engine = Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        ));
        let mut learner = Learner::new(engine.clone());
        let mut new_pattern = feedback();
        new_pattern.pattern = Some("brand-new-storm".into());
        let (mut aborted, mut again) = (Vec::new(), Vec::new());
        learner
            .process(Event::Feedback(new_pattern.clone()), 0, &mut aborted)
            .unwrap();
        // The first attempt's outputs were never committed; the retry finds the engine already
        // knowing the anomaly (so `learn` changes nothing), and still writes the pattern.
        assert!(!engine.on_feedback(&new_pattern));
        learner
            .process(Event::Feedback(new_pattern), 0, &mut again)
            .unwrap();
        assert_eq!(aborted.len(), 1);
        assert_eq!(again, aborted);
    }

    #[test]
    fn feedback_that_cannot_teach_is_refused_with_the_reason() {
        let mut learner = Learner::new(Arc::new(Engine::new(
            SemanticConfig::default(),
            PatternLibrary::builtin(),
        )));
        let mut unconfirmed = feedback();
        unconfirmed.confirmed_by = " ".into();
        let mut no_pattern = feedback();
        no_pattern.pattern = None;
        for (f, why) in [(unconfirmed, "confirmed_by"), (no_pattern, "pattern")] {
            let mut out = Vec::new();
            let err = learner
                .process(Event::Feedback(f), 0, &mut out)
                .unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert!(out.is_empty());
        }
    }
}
