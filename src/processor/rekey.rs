//! The re-key hop, for an anomaly topic whose partitions do not line up with the saga's
//! (docs/KEYS.md): every decoded anomaly is forwarded, unchanged, to the re-key topic keyed by
//! its correlation id, where the task that owns the incident picks it up.

use super::{Event, Output, ProcessError, Processor};

/// Forwards each anomaly to the partition of its correlation key.
#[derive(Debug, Default)]
pub struct Rekeyer;

impl Processor for Rekeyer {
    fn name(&self) -> &'static str {
        "rekey"
    }

    fn process(
        &mut self,
        event: Event,
        _now_ms: i64,
        out: &mut Vec<Output>,
    ) -> Result<(), ProcessError> {
        match event {
            Event::Anomaly(a) if !a.correlation_id.is_empty() => {
                out.push(Output::Rekeyed(a));
                Ok(())
            }
            Event::Anomaly(a) => Err(ProcessError::Failed(format!(
                "anomaly {} has an empty correlation_id, so no partition can own its incident",
                a.anomaly_id
            ))),
            other => Err(ProcessError::Failed(format!(
                "only anomalies are re-keyed, got {other:?}"
            ))),
        }
    }
}
