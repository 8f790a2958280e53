//! Durable sagas: the pure, deterministic core (no Kafka, no Avro, no I/O).
//!
//! # Layout
//! - [`config`]: workflow definitions (`topologies/workflows/*.toml`) and the `[saga]` settings.
//! - [`validate`]: every problem in a workflow, at once, naming file, path and value.
//! - [`workflows`]: the validated set, loaded from a directory or built in.
//! - [`graph`]: a workflow as Mermaid or DOT (`aura topology graph`).
//! - [`state`]: one saga's durable state, its timer and its command ids.
//! - [`backoff`]: retry delays, exponential with deterministic jitter.
//! - [`machine`]: [`SagaEngine`], the five inputs; `transitions` holds the moves they make,
//!   `classify` decides which command a result answers.
//! - [`kinds`]: the coordination step kinds (`fan_out`, `consensus`, `supervisor`, `escalate`),
//!   checked by `validate_kinds` and run by `crew` (fan-outs and supervisors' sub-tasks), `vote`
//!   (consensus) and `escalate`.
//! - [`view`]: a saga as `GET /sagas/{id}` shows it (with the tally of the votes in flight).
//! - [`effects`]: what an input produces.
//! - [`timers`]: the ordered index of pending timers, rebuilt after a restore.
//! - [`store`]: one partition's sagas and timers, driven by the engine.
//! - [`census`]: a store's sagas by status and its pending timers (the saga gauges).
//! - `compact`: the routing explanation phrase-coded in the saga's state, expanded for commands.
//!
//! # How the runtime drives it
//! A saga is keyed by `saga_id`; anomalies (re-keyed by saga id), agent results and timers for one
//! saga all reach the same partition, which owns the saga's state. Per input:
//! - an anomaly: [`SagaStore::start_or_join`] (or [`SagaEngine::start`] for a new id and
//!   [`SagaEngine::join`] for a known one): a storm of anomalies for one incident joins one saga;
//! - an `AgentResult`: [`SagaEngine::on_result`];
//! - an `AgentVote` (`agent.votes`, keyed like results): [`SagaEngine::on_vote`]
//!   ([`SagaStore::on_vote`]);
//! - a due timer from [`TimerIndex::due`]: [`SagaEngine::on_timer`].
//!
//! Each returns [`Effects`]: records to publish (commands, saga events, compensations,
//! escalations, consensus decisions, cancels), a [`TimerUpdate`] for the index, a
//! [`StateChange`] to write through to the changelog (`Put` the state as JSON, or `Delete` as a
//! tombstone), and, for an input that changed nothing, why it was [`Ignored`] (duplicate, late,
//! unknown, rejected, not asked, invalid), for the metrics. The
//! outputs, the state write and the input offset belong in one transaction; then a crash between
//! any two of them cannot happen, and re-processing after an abort yields the same records
//! because the engine is deterministic (clock injected, ids and jitter derived from the saga).
//!
//! # Lifecycle
//! STARTED, then per step STEP_STARTED and either STEP_SUCCEEDED (next step by the first matching
//! edge, or COMPLETED) or STEP_FAILED / STEP_TIMED_OUT followed by RETRY_SCHEDULED. When a step's
//! last attempt fails: FAILED (`on_failure = "fail"`), or COMPENSATING, one compensation at a time
//! newest completed step first, and COMPENSATED. A compensation that fails or times out is retried
//! with the step's backoff (RETRY_SCHEDULED with the compensation's command id) up to its
//! `max_attempts`; then COMPENSATION_FAILED, an `Escalation` one layer up, and FAILED.
//!
//! Coordination steps emit the same events per command: a fan-out's or supervisor's branches each
//! get STEP_STARTED and STEP_SUCCEEDED or STEP_FAILED (with the branch's command id), and the step
//! closes with STEP_SUCCEEDED (join met) or STEP_FAILED (join failed, then as a failed step); a
//! consensus closes with STEP_SUCCEEDED (AGREED) or STEP_FAILED (tied, no quorum) after its
//! `ConsensusDecision`.
//!
//! # Finished sagas
//! A finished saga keeps a small state (its routing context dropped) for `retention_ms`, with an
//! expiry timer, so that a late or duplicate result still finds it and is counted as such rather
//! than as unknown; the expiry deletes it. `retention_ms = 0` deletes at once.

pub mod backoff;
pub mod census;
mod classify;
mod compact;
pub mod config;
mod crew;
pub mod effects;
mod escalate;
pub mod graph;
pub mod kinds;
pub mod machine;
pub mod state;
pub mod store;
pub mod timers;
mod transitions;
pub mod validate;
mod validate_kinds;
pub mod view;
mod vote;
pub mod workflows;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crew;
#[cfg(test)]
mod tests_vote;

pub use census::SagaCensus;
pub use config::{OnFailure, RetryPolicy, SagaConfig, StepSpec, WorkflowSpec};
pub use effects::{Effects, Ignored, SagaOutput, StateChange, TimerUpdate};
pub use machine::{SagaEngine, SagaError, SagaStart};
pub use state::{SagaState, SagaStatus, Timer, TimerKind};
pub use store::SagaStore;
pub use timers::TimerIndex;
pub use validate::Problem;
pub use view::saga_view;
pub use workflows::{WorkflowError, Workflows};
