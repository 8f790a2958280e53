//! Authenticated agents: Aura signs every command with a per-agent-type key, and accepts an
//! answer (result or vote) only when it is signed by a live key of the agent type the saga asked,
//! for this incarnation of the saga, and answers the command the saga is waiting on.
//!
//! - [`mac`]: the signed bytes (length-prefixed fields) and HMAC-SHA256.
//! - [`keys`]: the keyring file: keys by id, per agent type, active / verify-only / retired.
//! - [`sign`]: which fields each record signs, and signing.
//! - [`verify`]: the checks and their reason codes ([`Rejection::code`]).
//! - [`config`]: `[agent_auth]`, the keyring's location.
//! - [`gate`]: the saga processor's entrance and exit: verify answers, sign commands.
//!
//! Why HMAC and per-type keys: agents of one type are interchangeable workers, so a key per type
//! is what the routing already trusts; a symmetric key needs no PKI and is checked in
//! microseconds. The cost: an agent can sign commands for its own type, so a compromised agent
//! key lets its holder command agents of that type (deploy/SECURITY.md).

pub mod config;
pub mod gate;
pub mod keys;
pub mod mac;
pub mod sign;
pub mod verify;

pub use config::AgentAuthConfig;
pub use gate::AnswerGate;
pub use keys::{Key, KeyState, Keyring, KeyringError};
pub use sign::{sign, SignError, Signable};
pub use verify::{
    rejection_for_ignored, rejection_for_ignored_vote, verify_signature, verify_vote, Rejection,
};

#[cfg(test)]
mod tests;
