//! A saga as `GET /sagas/{id}` shows it: the durable state, plus what is derived from it and so
//! not stored, the tally of the consensus in flight.

use serde_json::{json, Value};

use super::state::SagaState;
use super::vote::tally;

/// The saga's state as JSON, with `current.tally` (weight per option) while votes are counted.
/// Branches, ballots and the votes counted are in `current.branches`.
pub fn saga_view(s: &SagaState) -> Value {
    let mut v = serde_json::to_value(s).expect("saga state serializes");
    // The explanation as commands carry it, not as the state stores it.
    if !s.route.explanation.is_empty() {
        v["route"]["explanation"] = json!(super::compact::expand(&s.route.explanation));
    }
    let votes = s
        .current
        .as_ref()
        .filter(|r| r.branches.iter().any(|b| b.vote.is_some()));
    if let (Some(run), Some(current)) = (votes, v.get_mut("current")) {
        current["tally"] = json!(tally(run));
    }
    v
}
