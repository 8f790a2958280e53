//! Synthetic anomalies for `aura produce`, `aura demo` and `aura bench`: the semantic
//! engine's labelled archetypes with unique ids and live timestamps, and on request malformed
//! records of every class the dead-letter topic knows.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::model::TdaAnomaly;
use crate::semantic::archetypes::{self, Scenario, UnknownScenario};
use crate::semantic::{Label, LabelledAnomaly};

/// The kinds of malformed record `--bad-ratio` mixes in, each a dead-letter class.
pub const BAD_KINDS: &[BadKind] = &[
    BadKind::NoMagicByte,
    BadKind::UnknownSchemaId,
    BadKind::TruncatedAvro,
    BadKind::MissingId,
    BadKind::ScoreOutOfRange,
    BadKind::NanScore,
    BadKind::DeathBeforeBirth,
    BadKind::DiagramTooLarge,
    BadKind::FutureTimestamp,
    BadKind::EmptyKey,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadKind {
    NoMagicByte,
    UnknownSchemaId,
    TruncatedAvro,
    MissingId,
    ScoreOutOfRange,
    NanScore,
    DeathBeforeBirth,
    DiagramTooLarge,
    FutureTimestamp,
    EmptyKey,
}

/// A record to publish: a valid anomaly, or a malformed one and how it is malformed.
pub enum Synthetic {
    Good(TdaAnomaly),
    /// Breaks the contract after decoding (the bytes are good Avro).
    BadContent(BadKind, TdaAnomaly),
    /// Breaks the framing or the key; the producer applies the damage to the bytes.
    BadBytes(BadKind, TdaAnomaly),
}

pub struct Generator {
    rng: SmallRng,
    scenario: Scenario,
    next: u64,
    run: String,
    sources: usize,
    bad_ratio: f64,
}

impl Generator {
    /// Anomalies drawn from the labelled archetypes of the `mixed` scenario (see
    /// [`crate::semantic::archetypes`]); `sources` distinct correlation keys; `bad_ratio` in
    /// [0,1] of malformed records.
    pub fn new(seed: u64, sources: usize, bad_ratio: f64) -> Self {
        Self::for_scenario("mixed", seed, 0.3, sources, bad_ratio).expect("mixed is a scenario")
    }

    /// Like [`Generator::new`] for a named scenario with its noise level in [0, 1].
    pub fn for_scenario(
        name: &str,
        seed: u64,
        noise: f64,
        sources: usize,
        bad_ratio: f64,
    ) -> Result<Self, UnknownScenario> {
        Ok(Self {
            rng: SmallRng::seed_from_u64(seed),
            scenario: archetypes::scenario(name, seed, noise)?,
            next: 0,
            run: format!("{seed:x}"),
            sources: sources.max(1),
            bad_ratio,
        })
    }

    /// The next anomaly with its label, detected at `now_ms`, with a unique id and one of
    /// the generator's sources as its correlation key.
    pub fn labelled(&mut self, now_ms: i64) -> LabelledAnomaly {
        let mut example = self.scenario.next().expect("scenarios are endless");
        let n = self.next;
        self.next += 1;
        let source = format!("svc-{:03}", self.rng.random_range(0..self.sources));
        let a = &mut example.anomaly;
        a.anomaly_id = format!("anom-{}-{n}", self.run);
        a.correlation_id = source.clone();
        a.source = source;
        a.detected_at = now_ms;
        a.attributes.insert("generator".into(), "aura".into());
        example
    }

    /// The next anomaly, detected at `now_ms`.
    pub fn anomaly(&mut self, now_ms: i64) -> TdaAnomaly {
        self.labelled(now_ms).anomaly
    }

    /// The next record: valid, or malformed with probability `bad_ratio`.
    pub fn next_record(&mut self, now_ms: i64) -> Synthetic {
        self.next_labelled_record(now_ms).0
    }

    /// The next record and the label of the anomaly it was made from.
    pub fn next_labelled_record(&mut self, now_ms: i64) -> (Synthetic, Label) {
        let LabelledAnomaly { mut anomaly, label } = self.labelled(now_ms);
        if !self.rng.random_bool(self.bad_ratio.clamp(0.0, 1.0)) {
            return (Synthetic::Good(anomaly), label);
        }
        let kind = BAD_KINDS[self.rng.random_range(0..BAD_KINDS.len())];
        (damage(kind, &mut anomaly, now_ms), label)
    }
}

/// Applies `kind` to a valid anomaly.
pub fn damage(kind: BadKind, anomaly: &mut TdaAnomaly, now_ms: i64) -> Synthetic {
    let a = anomaly;
    match kind {
        BadKind::MissingId => a.anomaly_id.clear(),
        BadKind::ScoreOutOfRange => a.anomaly_score = 1.5,
        BadKind::NanScore => a.anomaly_score = f64::NAN,
        BadKind::DeathBeforeBirth => a.diagram[0].death = a.diagram[0].birth - 1.0,
        // Past the default cap of 4096, yet small enough for the broker's 1 MB message limit.
        BadKind::DiagramTooLarge => a.diagram = vec![a.diagram[0]; 5_000],
        BadKind::FutureTimestamp => a.detected_at = now_ms + 24 * 3600 * 1000,
        BadKind::NoMagicByte
        | BadKind::UnknownSchemaId
        | BadKind::TruncatedAvro
        | BadKind::EmptyKey => return Synthetic::BadBytes(kind, a.clone()),
    }
    Synthetic::BadContent(kind, a.clone())
}

/// Damages encoded bytes and key for the byte-level kinds.
pub fn damage_bytes(kind: BadKind, key: &mut Vec<u8>, value: &mut Vec<u8>) {
    match kind {
        BadKind::NoMagicByte => *value = br#"{"anomaly_id": "json-is-not-avro"}"#.to_vec(),
        BadKind::UnknownSchemaId => value[1..5].copy_from_slice(&0x7fff_fff0u32.to_be_bytes()),
        BadKind::TruncatedAvro => value.truncate(value.len() / 3),
        BadKind::EmptyKey => key.clear(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ValidationConfig;
    use crate::processor::validate;

    #[test]
    fn generated_anomalies_are_valid() {
        let mut g = Generator::new(7, 10, 0.0);
        for _ in 0..1000 {
            let a = g.anomaly(1_000);
            assert_eq!(validate(&a, &ValidationConfig::default(), 1_000), Ok(()));
        }
    }

    #[test]
    fn every_content_damage_is_caught_by_validation() {
        let mut g = Generator::new(7, 10, 0.0);
        for kind in BAD_KINDS {
            let mut a = g.anomaly(1_000);
            if let Synthetic::BadContent(_, a) = damage(*kind, &mut a, 1_000) {
                assert!(
                    validate(&a, &ValidationConfig::default(), 1_000).is_err(),
                    "{kind:?}"
                );
            }
        }
    }
}
