//! Checking an agent's answer: that a key of the claimed agent type signed it, that the key is
//! live, that it is for this incarnation of the saga, and (from the saga's own verdict) that it
//! answers the command the saga is waiting on, from the agent type it asked. Each failure is one
//! [`Rejection`] with a reason code; the record goes to the dead-letter topic and the saga is
//! left exactly as it was.

use crate::model::{AgentResult, AgentType, AgentVote};
use crate::saga::Ignored;

use super::keys::{KeyState, Keyring};
use super::mac;
use super::sign::{message_of, Signable};

/// Why an answer was refused. [`Rejection::code`] is the dead letter's error class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{what} carries no signature, and this Aura requires one")]
    Unsigned { what: &'static str },
    #[error("{what} is signed with key {key_id:?}, which the keyring does not hold")]
    UnknownKey { what: &'static str, key_id: String },
    #[error("{what} is signed with key {key_id:?}, which is retired")]
    RetiredKey { what: &'static str, key_id: String },
    #[error("{what} claims agent type {claimed:?} but is signed with key {key_id:?} of {owner:?}")]
    KeyOfAnotherType {
        what: &'static str,
        key_id: String,
        owner: AgentType,
        claimed: AgentType,
    },
    #[error("{what} has a signature that does not match its fields (forged or altered)")]
    Forged { what: &'static str },
    #[error(
        "{what} is for incarnation {got} of saga {saga_id}, which is at incarnation {expected}"
    )]
    StaleIncarnation {
        what: &'static str,
        saga_id: String,
        got: i64,
        expected: i64,
    },
    #[error("result for command {command_id} repeats an answer the saga already has (replayed)")]
    Replayed { command_id: String },
    #[error("result for command {command_id} answers an attempt the saga is not waiting on")]
    WrongAttempt { command_id: String },
    #[error("result for command {command_id} comes from a {got:?} agent; the saga asked a {expected:?} agent")]
    AgentNotAsked {
        command_id: String,
        expected: AgentType,
        got: AgentType,
    },
    #[error("vote {vote_id} comes from a {got:?} agent; step {step} asked {asked:?}")]
    VoterNotAsked {
        vote_id: String,
        step: String,
        asked: Vec<AgentType>,
        got: AgentType,
    },
    #[error("result for command {command_id} answers no command this saga issued")]
    UnknownCommand { command_id: String },
    #[error("vote {vote_id} answers no ballot this saga sent (the agent was not asked)")]
    BallotNotSent { vote_id: String },
    #[error("vote {vote_id} repeats a vote the saga already counted (replayed)")]
    VoteReplayed { vote_id: String },
}

impl Rejection {
    /// The dead letter's error class and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned { .. } => "auth_unsigned",
            Self::UnknownKey { .. } => "auth_unknown_key",
            Self::RetiredKey { .. } => "auth_retired_key",
            Self::KeyOfAnotherType { .. } | Self::Forged { .. } => "auth_forged",
            Self::StaleIncarnation { .. } => "auth_stale_incarnation",
            Self::Replayed { .. } | Self::VoteReplayed { .. } => "auth_replayed",
            Self::WrongAttempt { .. } => "auth_wrong_attempt",
            Self::AgentNotAsked { .. }
            | Self::VoterNotAsked { .. }
            | Self::BallotNotSent { .. } => "auth_agent_not_asked",
            Self::UnknownCommand { .. } => "auth_unknown_command",
        }
    }
}

/// Checks that `record` is signed by a live key of its claimed agent type, over its own fields
/// and `incarnation`, the saga's current incarnation (`None`: no saga to compare with).
pub fn verify_signature<T: Signable>(
    keyring: &Keyring,
    record: &T,
    incarnation: Option<i64>,
) -> Result<(), Rejection> {
    let what = T::DOMAIN.trim_start_matches("aura.v1.");
    let proof = record.proof().ok_or(Rejection::Unsigned { what })?;
    let key = keyring
        .get(&proof.key_id)
        .ok_or_else(|| Rejection::UnknownKey {
            what,
            key_id: proof.key_id.clone(),
        })?;
    if key.state == KeyState::Retired {
        return Err(Rejection::RetiredKey {
            what,
            key_id: key.id.clone(),
        });
    }
    if key.agent_type != record.signer_type() {
        return Err(Rejection::KeyOfAnotherType {
            what,
            key_id: key.id.clone(),
            owner: key.agent_type,
            claimed: record.signer_type(),
        });
    }
    let message = message_of(record, &key.id, proof.incarnation);
    if !mac::verify(key.secret.expose().as_bytes(), &message, &proof.signature) {
        return Err(Rejection::Forged { what });
    }
    match incarnation {
        Some(expected) if proof.incarnation != expected => Err(Rejection::StaleIncarnation {
            what,
            saga_id: record.saga_id().to_owned(),
            got: proof.incarnation,
            expected,
        }),
        _ => Ok(()),
    }
}

/// The rejection for a correctly signed result the saga machine ignored: it already had the
/// answer, it was for another attempt, from another agent type, or for no command it issued.
pub fn rejection_for_ignored(result: &AgentResult, ignored: Ignored) -> Option<Rejection> {
    let command_id = result.command_id.clone();
    Some(match ignored {
        Ignored::Duplicate => Rejection::Replayed { command_id },
        Ignored::Late => Rejection::WrongAttempt { command_id },
        Ignored::Rejected { expected, got } => Rejection::AgentNotAsked {
            command_id,
            expected,
            got,
        },
        Ignored::Unknown | Ignored::NotAsked => Rejection::UnknownCommand { command_id },
        Ignored::Invalid | Ignored::StaleTimer => return None,
    })
}

/// The rejection for a correctly signed vote the saga machine ignored: a repeat, a ballot it
/// never sent, or a voter of another type. A late vote is genuine (the decision came as soon as
/// it was sure, before every ballot was in) and only counted; a vote for an option the step
/// does not offer is left to the saga processor (refused with or without auth).
pub fn rejection_for_ignored_vote(vote: &AgentVote, ignored: Ignored) -> Option<Rejection> {
    let vote_id = vote.vote_id.clone();
    Some(match ignored {
        Ignored::Duplicate => Rejection::VoteReplayed { vote_id },
        Ignored::Rejected { expected, got } => Rejection::VoterNotAsked {
            vote_id,
            step: vote.step.clone(),
            asked: vec![expected],
            got,
        },
        Ignored::Unknown | Ignored::NotAsked => Rejection::BallotNotSent { vote_id },
        Ignored::Late | Ignored::Invalid | Ignored::StaleTimer => return None,
    })
}

/// Checks a vote: signed by a live key of its agent type for this incarnation, and cast by an
/// agent type the consensus step asked.
pub fn verify_vote(
    keyring: &Keyring,
    vote: &AgentVote,
    asked: &[AgentType],
    incarnation: i64,
) -> Result<(), Rejection> {
    verify_signature(keyring, vote, Some(incarnation))?;
    if !asked.contains(&vote.agent_type) {
        return Err(Rejection::VoterNotAsked {
            vote_id: vote.vote_id.clone(),
            step: vote.step.clone(),
            asked: asked.to_vec(),
            got: vote.agent_type,
        });
    }
    Ok(())
}
