//! Enrichment: the anomaly joined with its source's row of the `tda.context` table.

use std::sync::Arc;

use crate::model::{TdaAnomaly, TdaContext};
use crate::table::Table;

/// An anomaly and what is known about its source.
pub struct Enriched {
    pub anomaly: TdaAnomaly,
    /// None when the table has no row for the source yet; scoring then uses no baseline.
    pub context: Option<Arc<TdaContext>>,
}

pub fn enrich(anomaly: TdaAnomaly, contexts: &Table<TdaContext>) -> Enriched {
    let context = contexts.get(&anomaly.source);
    Enriched { anomaly, context }
}
