//! Feature flags: which keys a flag applies to, by a hash that never changes.
//!
//! A flag at `rollout_percent` = P applies to a key when the key's bucket, in [0, 10000), is
//! below P × 100. The bucket is Kafka's murmur2 (the Java client's, as in
//! [`crate::runtime::partitioner::murmur2`]) over the UTF-8 bytes of `"<flag name>:<key>"`,
//! made positive (`& 0x7fffffff`), modulo 10000. Any instance, any version, and any client in
//! another language that implements murmur2 computes the same answer for the same key, so a
//! canary holds the same incidents everywhere; Rust's `DefaultHasher` gives no such promise.

use crate::model::FeatureFlag;
use crate::runtime::partitioner::murmur2;

/// The key's rollout bucket for `flag`, in [0, 10000).
pub fn rollout_bucket(flag: &str, key: &str) -> u32 {
    let hashed = murmur2(format!("{flag}:{key}").as_bytes());
    (hashed & 0x7fff_ffff) as u32 % 10_000
}

/// Whether `flag` applies to `key`: enabled, and the key's bucket inside the rollout share.
pub fn applies(flag: &FeatureFlag, key: &str) -> bool {
    flag.enabled && f64::from(rollout_bucket(&flag.name, key)) < flag.rollout_percent * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(percent: f64, enabled: bool) -> FeatureFlag {
        FeatureFlag {
            name: "canary".into(),
            enabled,
            rollout_percent: percent,
            updated_at: 0,
        }
    }

    #[test]
    fn buckets_are_kafkas_murmur2_and_never_change() {
        // murmur2 itself is checked against Kafka's own test vectors in runtime::partitioner;
        // the bucket is that hash, made positive, modulo 10000.
        let expected = (murmur2(b"canary:checkout") & 0x7fff_ffff) as u32 % 10_000;
        assert_eq!(rollout_bucket("canary", "checkout"), expected);
        assert_eq!(
            rollout_bucket("canary", "checkout"),
            rollout_bucket("canary", "checkout")
        );
    }

    #[test]
    fn a_rollout_share_applies_to_about_that_share_and_grows_monotonically() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("incident-{i}")).collect();
        let share = |p| keys.iter().filter(|k| applies(&flag(p, true), k)).count();
        let thirty = share(30.0);
        assert!((2_800..3_200).contains(&thirty), "{thirty} of 10000 at 30%");
        // Raising the share keeps every key already in: a canary only ever grows.
        for k in &keys {
            if applies(&flag(30.0, true), k) {
                assert!(applies(&flag(60.0, true), k));
            }
        }
        assert_eq!(share(0.0), 0);
        assert_eq!(share(100.0), 10_000);
        assert_eq!(
            keys.iter()
                .filter(|k| applies(&flag(100.0, false), k))
                .count(),
            0
        );
    }
}
