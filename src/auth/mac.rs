//! The signed message: a domain name and fields, each length-prefixed, under HMAC-SHA256.
//!
//! Length prefixes (4 bytes, big-endian) make the encoding unambiguous: no choice of field
//! values can make two different field lists sign the same bytes. The domain (the record's Avro
//! name) keeps a command's signature from ever passing as a result's. Agents in any language
//! compute the same bytes; `deploy/SECURITY.md` shows it in Python.

use std::collections::HashMap;

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The bytes signed for `domain` and `fields`.
pub fn message(domain: &str, fields: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    for part in std::iter::once(domain).chain(fields.iter().copied()) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// HMAC-SHA256 of `message` under `key`, as lower-case hex.
pub fn sign(key: &[u8], message: &[u8]) -> String {
    let pkey = PKey::hmac(key).expect("any key length is a valid HMAC key");
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).expect("SHA-256 is available");
    signer.update(message).expect("HMAC update does not fail");
    hex(&signer.sign_to_vec().expect("HMAC finish does not fail"))
}

/// Whether `signature` is the HMAC of `message` under `key`, compared in constant time.
pub fn verify(key: &[u8], message: &[u8], signature: &str) -> bool {
    let expected = sign(key, message);
    expected.len() == signature.len()
        && openssl::memcmp::eq(expected.as_bytes(), signature.as_bytes())
}

/// SHA-256 of a string map, as hex: its entries sorted by key, each key and value length-prefixed.
pub fn digest_map(map: &HashMap<String, String>) -> String {
    let mut entries: Vec<(&String, &String)> = map.iter().collect();
    entries.sort();
    let fields: Vec<&str> = entries
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    hex(&openssl::sha::sha256(&message("map", &fields)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn field_boundaries_are_part_of_the_message() {
        assert_ne!(message("d", &["ab", "c"]), message("d", &["a", "bc"]));
        assert_ne!(message("d", &["a"]), message("e", &["a"]));
    }

    #[test]
    fn verify_accepts_only_the_exact_signature() {
        let m = message("d", &["x"]);
        let s = sign(b"k", &m);
        assert!(verify(b"k", &m, &s));
        assert!(!verify(b"other", &m, &s));
        assert!(!verify(b"k", &m, &s[..10]));
        assert!(!verify(b"k", &message("d", &["y"]), &s));
    }

    #[test]
    fn a_map_digest_ignores_insertion_order() {
        let a: HashMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let b: HashMap<String, String> =
            [("b".into(), "2".into()), ("a".into(), "1".into())].into();
        assert_eq!(digest_map(&a), digest_map(&b));
        let c: HashMap<String, String> = [("a".into(), "12".into())].into();
        assert_ne!(digest_map(&a), digest_map(&c));
    }
}
