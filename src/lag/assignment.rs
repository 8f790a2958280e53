//! Decodes a classic consumer group member's assignment (Kafka's `ConsumerProtocolAssignment`,
//! the bytes DescribeGroups returns): which partitions of which topics that member owns.
//!
//! Layout (every version): `version: int16`, then an array (`int32` count) of
//! `{topic: string (int16 length + UTF-8), partitions: array of int32}`, then `user_data`, which
//! is not needed here and is not read.

/// `(topic, partition)` pairs, or `None` when the bytes are not a consumer assignment (another
/// protocol type, or truncated).
pub fn decode(bytes: &[u8]) -> Option<Vec<(String, i32)>> {
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut owned = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).ok()?;
        let topic = String::from_utf8(r.take(len)?.to_vec()).ok()?;
        let partitions = r.i32()?;
        for _ in 0..partitions.max(0) {
            owned.push((topic.clone(), r.i32()?));
        }
    }
    Some(owned)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = 3i16.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            b.extend((topic.len() as i16).to_be_bytes());
            b.extend(topic.as_bytes());
            b.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                b.extend(p.to_be_bytes());
            }
        }
        b.extend((-1i32).to_be_bytes()); // null user data
        b
    }

    #[test]
    fn decodes_every_topic_and_partition() {
        let bytes = encode(&[("tda.anomalies", &[0, 2]), ("agent.results", &[1])]);
        assert_eq!(
            decode(&bytes).unwrap(),
            vec![
                ("tda.anomalies".to_string(), 0),
                ("tda.anomalies".to_string(), 2),
                ("agent.results".to_string(), 1)
            ]
        );
    }

    #[test]
    fn truncated_or_foreign_bytes_are_refused_not_misread() {
        let bytes = encode(&[("tda.anomalies", &[0, 2])]);
        for cut in [0, 1, 5, 8, bytes.len() - 7] {
            assert_eq!(decode(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&[]), None);
    }
}
