//! `aura.v1.Proof`: the signature commands, results and votes carry (`src/auth/`).

use serde::{Deserialize, Serialize};

/// An HMAC-SHA256 signature with a per-agent-type key, and the saga incarnation it binds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// The saga's incarnation (its start time, ms), copied from a command into its answers.
    pub incarnation: i64,
    /// The id of the key that signed, for rotation.
    pub key_id: String,
    /// Lower-case hex HMAC-SHA256 of the record's signed fields.
    pub signature: String,
}
