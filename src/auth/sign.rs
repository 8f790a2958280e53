//! What each record signs, and signing it. The field lists here are the contract an agent in
//! any language reproduces (`deploy/SECURITY.md`); changing one breaks every deployed agent.

use crate::model::{AgentCommand, AgentResult, AgentType, AgentVote, CompensationCommand, Proof};

use super::keys::Keyring;
use super::mac;

/// A record that carries a [`Proof`] over some of its fields.
pub trait Signable {
    /// The Avro name: the signature's domain.
    const DOMAIN: &'static str;
    /// The agent type whose key signs it.
    fn signer_type(&self) -> AgentType;
    fn saga_id(&self) -> &str;
    /// The signed fields after the key id, in order.
    fn signed_fields(&self, incarnation: i64) -> Vec<String>;
    fn proof(&self) -> Option<&Proof>;
    fn set_proof(&mut self, proof: Proof);
}

/// The bytes signed for `record` under `key_id` and `incarnation`.
pub fn message_of<T: Signable>(record: &T, key_id: &str, incarnation: i64) -> Vec<u8> {
    let fields = record.signed_fields(incarnation);
    let mut all: Vec<&str> = vec![key_id];
    all.extend(fields.iter().map(String::as_str));
    mac::message(T::DOMAIN, &all)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("no active key for agent type {0:?} in the keyring")]
    NoActiveKey(AgentType),
}

/// Signs `record` with the active key of its agent type, binding `incarnation`.
pub fn sign<T: Signable>(
    keyring: &Keyring,
    record: &mut T,
    incarnation: i64,
) -> Result<(), SignError> {
    let agent_type = record.signer_type();
    let key = keyring
        .active(agent_type)
        .ok_or(SignError::NoActiveKey(agent_type))?;
    let signature = mac::sign(
        key.secret.expose().as_bytes(),
        &message_of(record, &key.id, incarnation),
    );
    record.set_proof(Proof {
        incarnation,
        key_id: key.id.clone(),
        signature,
    });
    Ok(())
}

fn agent_type_name(t: AgentType) -> &'static str {
    match t {
        AgentType::Observer => "OBSERVER",
        AgentType::Analyst => "ANALYST",
        AgentType::Supervisor => "SUPERVISOR",
    }
}

/// The accessors every signed record has alike: its `agent_type`, `saga_id` and `proof` fields.
macro_rules! record_fields {
    () => {
        fn signer_type(&self) -> AgentType {
            self.agent_type
        }
        fn saga_id(&self) -> &str {
            &self.saga_id
        }
        fn proof(&self) -> Option<&Proof> {
            self.proof.as_ref()
        }
        fn set_proof(&mut self, proof: Proof) {
            self.proof = Some(proof);
        }
    };
}

impl Signable for AgentCommand {
    const DOMAIN: &'static str = "aura.v1.AgentCommand";
    record_fields!();
    fn signed_fields(&self, incarnation: i64) -> Vec<String> {
        vec![
            self.command_id.clone(),
            self.saga_id.clone(),
            self.step.clone(),
            self.attempt.to_string(),
            incarnation.to_string(),
            agent_type_name(self.agent_type).to_owned(),
            // Not `deadline`: Avro clients decode its timestamp-millis type to a date, which
            // would make agents in other languages print it differently.
            self.action.clone(),
        ]
    }
}

impl Signable for CompensationCommand {
    const DOMAIN: &'static str = "aura.v1.CompensationCommand";
    record_fields!();
    fn signed_fields(&self, incarnation: i64) -> Vec<String> {
        vec![
            self.command_id.clone(),
            self.saga_id.clone(),
            self.step.clone(),
            self.attempt.to_string(),
            incarnation.to_string(),
            agent_type_name(self.agent_type).to_owned(),
            self.action.clone(),
            self.compensates_command_id.clone(),
        ]
    }
}

impl Signable for AgentResult {
    const DOMAIN: &'static str = "aura.v1.AgentResult";
    record_fields!();
    fn signed_fields(&self, incarnation: i64) -> Vec<String> {
        vec![
            self.command_id.clone(),
            self.saga_id.clone(),
            self.step.clone(),
            self.attempt.to_string(),
            incarnation.to_string(),
            self.agent_id.clone(),
            agent_type_name(self.agent_type).to_owned(),
            match self.status {
                crate::model::ResultStatus::Succeeded => "SUCCEEDED".to_owned(),
                crate::model::ResultStatus::Failed => "FAILED".to_owned(),
            },
            mac::digest_map(&self.output),
        ]
    }
}

impl Signable for AgentVote {
    const DOMAIN: &'static str = "aura.v1.AgentVote";
    record_fields!();
    fn signed_fields(&self, incarnation: i64) -> Vec<String> {
        vec![
            self.vote_id.clone(),
            self.saga_id.clone(),
            self.step.clone(),
            incarnation.to_string(),
            self.agent_id.clone(),
            agent_type_name(self.agent_type).to_owned(),
            self.choice.clone(),
            // Fixed precision, so every language prints the same digits.
            format!("{:.6}", self.weight),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::auth::keys::{Key, KeyState};
    use crate::model::{Coordination, Layer, ResultStatus};
    use crate::security::Secret;

    /// The signatures the Python example in deploy/SECURITY.md computes for these records: a
    /// change to a field list here breaks every deployed agent, and this test.
    #[test]
    fn signatures_match_the_documented_python_agent() {
        let keyring = Keyring::from_keys([Key {
            id: "obs-1".into(),
            agent_type: AgentType::Observer,
            state: KeyState::Active,
            secret: Secret::new("observer-secret-0123456789abcdef0123"),
        }]);
        let mut command = AgentCommand {
            command_id: "s@1/collect/1".into(),
            saga_id: "s@1".into(),
            correlation_id: "s".into(),
            anomaly_ids: vec![],
            workflow: "triage".into(),
            step: "collect".into(),
            agent_type: AgentType::Observer,
            action: "collect-telemetry".into(),
            layer: Layer::Operational,
            coordination: Coordination::Pipeline,
            pattern_id: None,
            urgency: 0.5,
            complexity: 0.5,
            attempt: 1,
            deadline: 1_700_000_060_000,
            explanation: String::new(),
            attributes: HashMap::new(),
            issued_at: 1_700_000_000_000,
            partition_key: "s".into(),
            agent_id: None,
            proof: None,
        };
        sign(&keyring, &mut command, 1_700_000_000_000).unwrap();
        assert_eq!(
            command.proof.unwrap().signature,
            "e3b3be8420a87140f3ca9713a7d67c41edfd0720052de9cec9a74b29c1806896"
        );
        let mut result = AgentResult {
            command_id: "s@1/collect/1".into(),
            saga_id: "s@1".into(),
            correlation_id: "s".into(),
            step: "collect".into(),
            attempt: 1,
            agent_id: "obs-a".into(),
            agent_type: AgentType::Observer,
            status: ResultStatus::Succeeded,
            output: [("severity", "high"), ("cpu", "93")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            error: None,
            finished_at: 0,
            proof: None,
        };
        sign(&keyring, &mut result, 1_700_000_000_000).unwrap();
        assert_eq!(
            result.proof.unwrap().signature,
            "60aad0c8939191b828a4f5bd387f0c869e7b59287265fbb75ddfba8f492fef99"
        );
    }
}
