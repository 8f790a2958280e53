//! Why the saga processor refuses a vote, with or without agent auth: a vote no ballot asked for
//! (or from an agent type the ballot did not ask) and a vote for an option the step does not
//! offer are poison, so they go to the dead-letter topic with a reason code instead of vanishing.
//! Repeated and late votes are not poison: they are counted (`aura_saga_inputs_total`) and
//! change nothing, like repeated results.

use crate::model::AgentVote;
use crate::saga::Ignored;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoteRefusal {
    #[error("vote {vote_id} from agent {agent_id} answers no ballot saga {saga_id} sent to it (the agent was not asked)")]
    NotAsked {
        vote_id: String,
        agent_id: String,
        saga_id: String,
    },
    #[error("vote {vote_id} chooses {choice:?}, which step {step} does not offer")]
    InvalidChoice {
        vote_id: String,
        step: String,
        choice: String,
    },
}

impl VoteRefusal {
    /// The dead letter's error class and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAsked { .. } => "vote_not_asked",
            Self::InvalidChoice { .. } => "vote_invalid_choice",
        }
    }

    /// The refusal for a vote the saga ignored, when the reason makes it poison.
    pub fn of(vote: &AgentVote, ignored: Option<Ignored>) -> Option<Self> {
        match ignored? {
            Ignored::NotAsked | Ignored::Rejected { .. } => Some(Self::NotAsked {
                vote_id: vote.vote_id.clone(),
                agent_id: vote.agent_id.clone(),
                saga_id: vote.saga_id.clone(),
            }),
            Ignored::Invalid => Some(Self::InvalidChoice {
                vote_id: vote.vote_id.clone(),
                step: vote.step.clone(),
                choice: vote.choice.clone(),
            }),
            Ignored::Duplicate | Ignored::Late | Ignored::Unknown | Ignored::StaleTimer => None,
        }
    }
}
