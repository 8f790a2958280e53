//! Retry delays: exponential backoff with deterministic jitter.
//!
//! The jitter comes from a fixed hash of (saga id, step, attempt), never from a random source, so a
//! saga replayed from its changelog, or re-run after a crash, schedules exactly the same retries. The
//! hash is FNV-1a followed by the SplitMix64 finaliser, both fully specified here, because std's
//! `DefaultHasher` may change between Rust releases.

use super::config::RetryPolicy;

/// The wait before retrying after attempt `failed_attempt` (1-based) failed, in milliseconds:
/// `min(initial * multiplier^(n-1), max)`, then spread by ±`jitter` and capped at `max` again.
/// Always at least 1 ms.
pub fn retry_delay_ms(policy: &RetryPolicy, saga_id: &str, step: &str, failed_attempt: i32) -> i64 {
    let n = failed_attempt.max(1) - 1;
    let max = policy.max_interval_ms.max(1) as f64;
    let base = (policy.initial_interval_ms as f64 * policy.multiplier.powi(n)).min(max);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    let spread = if jitter > 0.0 {
        let u = unit(saga_id, step, failed_attempt);
        1.0 + jitter * (2.0 * u - 1.0)
    } else {
        1.0
    };
    ((base * spread).min(max).round() as i64).max(1)
}

/// A number in [0, 1) fixed by its inputs.
fn unit(saga_id: &str, step: &str, attempt: i32) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(saga_id.as_bytes());
    eat(&[0]);
    eat(step.as_bytes());
    eat(&[0]);
    eat(&attempt.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            initial_interval_ms: 100,
            multiplier: 2.0,
            max_interval_ms: 1_000,
            max_attempts: 10,
            jitter,
        }
    }

    #[test]
    fn without_jitter_the_delays_grow_exponentially_up_to_the_cap() {
        let p = policy(0.0);
        let delays: Vec<i64> = (1..=6).map(|n| retry_delay_ms(&p, "s", "a", n)).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn jitter_stays_in_its_band_is_deterministic_and_varies() {
        let p = policy(0.5);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let saga = format!("saga-{i}");
            let d = retry_delay_ms(&p, &saga, "step", 2);
            assert!((100..=300).contains(&d), "{d}");
            assert_eq!(d, retry_delay_ms(&p, &saga, "step", 2), "not deterministic");
            seen.insert(d);
            let capped = retry_delay_ms(&p, &saga, "step", 8);
            assert!((500..=1_000).contains(&capped), "{capped}");
        }
        assert!(seen.len() > 50, "jitter barely varies: {}", seen.len());
    }

    #[test]
    fn the_hash_is_pinned_so_replays_on_other_builds_agree() {
        // If this changes, retries scheduled before an upgrade fire at different times after it.
        let p = policy(1.0);
        assert_eq!(retry_delay_ms(&p, "saga-1", "collect", 1), 128);
        assert_eq!(retry_delay_ms(&p, "saga-1", "collect", 2), 192);
    }
}
