//! The saga processor's gate: answers are verified on the way in, commands signed on the way out.
//!
//! The gate is pure (no I/O, no clock), so it runs inside the synchronous saga processor, in the
//! same transaction as the saga it protects. An answer it refuses becomes a dead letter with the
//! reason code, and the saga never sees it.

use std::sync::Arc;

use crate::model::{AgentResult, AgentVote};
use crate::saga::{Ignored, SagaOutput};

use super::keys::Keyring;
use super::sign::{sign, SignError};
use super::verify::{
    rejection_for_ignored, rejection_for_ignored_vote, verify_signature, Rejection,
};

#[derive(Debug, Clone)]
pub struct AnswerGate {
    keyring: Arc<Keyring>,
}

impl AnswerGate {
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring: Arc::new(keyring),
        }
    }

    /// Before the saga sees `result`: it must be signed by a live key of its agent type, for
    /// the incarnation of the saga that holds it (`None`: no saga holds this id).
    pub fn admit(&self, result: &AgentResult, incarnation: Option<i64>) -> Result<(), Rejection> {
        verify_signature(&self.keyring, result, incarnation)?;
        if incarnation.is_none() {
            return Err(Rejection::UnknownCommand {
                command_id: result.command_id.clone(),
            });
        }
        Ok(())
    }

    /// After the saga judged a signed `result`: one it ignored (a replay, another attempt, an
    /// agent type it did not ask, a command it never issued) is refused too.
    pub fn judge(&self, result: &AgentResult, ignored: Option<Ignored>) -> Result<(), Rejection> {
        match ignored.and_then(|i| rejection_for_ignored(result, i)) {
            Some(rejection) => Err(rejection),
            None => Ok(()),
        }
    }

    /// Before the saga sees `vote`: signed by a live key of its agent type, for the incarnation
    /// of the saga that holds it (`None`: no saga holds this id, so no ballot was sent).
    pub fn admit_vote(&self, vote: &AgentVote, incarnation: Option<i64>) -> Result<(), Rejection> {
        verify_signature(&self.keyring, vote, incarnation)?;
        if incarnation.is_none() {
            return Err(Rejection::BallotNotSent {
                vote_id: vote.vote_id.clone(),
            });
        }
        Ok(())
    }

    /// After the saga judged a signed `vote`: one it ignored is refused too, with why.
    pub fn judge_vote(&self, vote: &AgentVote, ignored: Option<Ignored>) -> Result<(), Rejection> {
        match ignored.and_then(|i| rejection_for_ignored_vote(vote, i)) {
            Some(rejection) => Err(rejection),
            None => Ok(()),
        }
    }

    /// Signs every command and compensation in `outputs` for the saga's `incarnation`.
    pub fn sign_outputs(
        &self,
        outputs: &mut [SagaOutput],
        incarnation: i64,
    ) -> Result<(), SignError> {
        for output in outputs {
            match output {
                SagaOutput::Command(c) => sign(&self.keyring, c, incarnation)?,
                SagaOutput::Compensation(c) | SagaOutput::Cancel(c) => {
                    sign(&self.keyring, c, incarnation)?
                }
                SagaOutput::Event(_) | SagaOutput::Escalation(_) | SagaOutput::Decision(_) => {}
            }
        }
        Ok(())
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
}
