//! Which partition a keyed record lands on, computed exactly as the producers compute it.
//!
//! Our producers (and Kafka's Java clients) use librdkafka's `murmur2_random`: a non-null key
//! goes to `(murmur2(key) & 0x7fffffff) % partitions`, with Kafka's own murmur2 variant (seed
//! `0x9747b28c`, little-endian words). A state query must agree with it bit for bit, or it asks
//! the wrong task and says a saga that exists is missing.

/// The partition of `key` among `partitions` (which must be > 0).
pub fn partition_for(key: &[u8], partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    // The mask, not `abs`, is Kafka's: `abs(i32::MIN)` would overflow.
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Kafka's 32-bit murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes(word.try_into().expect("chunks of 4"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors (`UtilsTest.testMurmur2`), also used by kafka_ex and kafkabr, and the
    /// short keys Akka checks against Kafka's implementation: every tail length 0..=3 is covered.
    #[test]
    fn murmur2_matches_kafka() {
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn partitions_are_in_range_and_use_the_positive_mask() {
        // "21" hashes negative: the mask keeps 31 bits rather than taking the absolute value.
        assert_eq!(
            partition_for(b"21", 7),
            ((-973_932_308_i32) & 0x7fff_ffff) % 7
        );
        for key in ["", "a", "saga-1", "src/a/1700000000"] {
            let p = partition_for(key.as_bytes(), 3);
            assert!((0..3).contains(&p), "{key}: {p}");
        }
    }
}
