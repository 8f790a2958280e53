//! The Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian integer,
//! then the Avro binary datum.

use super::CodecError;

const MAGIC: u8 = 0;
/// Magic byte plus schema id.
pub const HEADER_LEN: usize = 5;

/// Splits a framed value into its schema id and Avro datum.
pub fn split(bytes: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match bytes {
        [] => Err(CodecError::TooShort { len: 0 }),
        [first, ..] if *first != MAGIC => Err(CodecError::NoMagicByte { first: *first }),
        [_, a, b, c, d, datum @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), datum)),
        _ => Err(CodecError::TooShort { len: bytes.len() }),
    }
}

/// Appends the header for `id` to `buf`.
pub fn put_header(buf: &mut Vec<u8>, id: u32) {
    buf.push(MAGIC);
    buf.extend_from_slice(&id.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let mut buf = Vec::new();
        put_header(&mut buf, 0x0102_0304);
        buf.push(42);
        assert_eq!(buf, [0, 1, 2, 3, 4, 42]);
        assert_eq!(split(&buf).unwrap(), (0x0102_0304, &[42u8][..]));
    }

    #[test]
    fn rejects_what_is_not_framed() {
        assert!(matches!(split(&[]), Err(CodecError::TooShort { len: 0 })));
        assert!(matches!(
            split(b"{\"a\":1}"),
            Err(CodecError::NoMagicByte { first: 0x7b })
        ));
        assert!(matches!(
            split(&[0, 0, 1]),
            Err(CodecError::TooShort { len: 3 })
        ));
        assert_eq!(split(&[0, 0, 0, 0, 9]).unwrap(), (9, &[][..]));
    }

    #[test]
    fn no_magic_message_names_the_byte() {
        let err = split(b"{}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "record has no Confluent magic byte (first byte 0x7b)"
        );
    }
}
