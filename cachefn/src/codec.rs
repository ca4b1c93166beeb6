//! Values as bytes: a small header, then the value in `postcard`.
//!
//! ```text
//! 0..2   magic  b"cf"
//! 2      format version (1)
//! 3      flags (0; reserved)
//! 4..12  type fingerprint: XXH3-64 of the value's type name, little endian
//! 12..20 expiry: Unix milliseconds, 0 = never (lets a reader back-fill a
//!        local tier for the entry's remaining lifetime without asking again)
//! 20..24 checksum: low 32 bits of XXH3-64 of the payload
//! 24..   payload: postcard
//! ```
//!
//! Bytes are untrusted input (another program, another deploy, a truncated
//! write): anything that does not check out (magic, version, type, checksum,
//! a payload postcard rejects or does not consume exactly) decodes as a miss,
//! never as a wrong value and never as a panic. Postcard allocates at most in
//! proportion to the input's length.

use std::any::{type_name, TypeId};

use serde::{de::DeserializeOwned, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::Error;

const MAGIC: &[u8; 2] = b"cf";
const FORMAT: u8 = 1;
/// Length of the header in front of every payload.
pub const HEADER_LEN: usize = 24;

/// The fingerprint of a value type. Type names are what the compiler
/// prints for the type (`alloc::string::String`, `myapp::Post`); changing a
/// type's fields without renaming it is what the `version` option is for.
#[inline]
pub fn type_fingerprint<T: ?Sized>() -> u64 {
    xxh3_64(type_name::<T>().as_bytes())
}

/// Encode `value` with an expiry (Unix ms, 0 = never).
pub fn encode<T: Serialize + ?Sized>(value: &T, expires_unix_ms: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(HEADER_LEN + 32);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(0);
    out.extend_from_slice(&type_fingerprint::<T>().to_le_bytes());
    out.extend_from_slice(&expires_unix_ms.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let mut out = postcard::to_extend(value, out)
        .map_err(|e| Error::Encode(format!("{e} ({})", type_name::<T>())))?;
    let sum = xxh3_64(&out[HEADER_LEN..]) as u32;
    out[20..24].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Why bytes did not decode. Every variant reads as a cache miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not written by cachefn, or by an incompatible format version.
    Foreign,
    /// Written for another type.
    WrongType,
    /// The payload does not match its checksum, or postcard rejects it.
    Corrupt,
}

/// The expiry (Unix ms, 0 = never) recorded in encoded bytes.
pub fn expiry(bytes: &[u8]) -> Option<u64> {
    header_ok(bytes).ok()?;
    Some(u64::from_le_bytes(bytes[12..20].try_into().ok()?))
}

fn header_ok(bytes: &[u8]) -> Result<(), DecodeError> {
    if bytes.len() < HEADER_LEN || &bytes[..2] != MAGIC || bytes[2] != FORMAT {
        return Err(DecodeError::Foreign);
    }
    Ok(())
}

/// Decode bytes written by [`encode`] for the same `T`.
///
/// Counters (`incr`) are kept as decimal text, the way Redis and memcached
/// store them, so an `i64` also decodes from plain ASCII digits.
pub fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, DecodeError> {
    if let Err(e) = header_ok(bytes) {
        return decode_counter::<T>(bytes).ok_or(e);
    }
    let fp = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    if fp != type_fingerprint::<T>() {
        return Err(DecodeError::WrongType);
    }
    let sum = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let payload = &bytes[HEADER_LEN..];
    if xxh3_64(payload) as u32 != sum {
        return Err(DecodeError::Corrupt);
    }
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        _ => Err(DecodeError::Corrupt),
    }
}

fn decode_counter<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Option<T> {
    if TypeId::of::<T>() != TypeId::of::<i64>() || bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    // Re-encode through postcard to produce a `T` without unsafe code.
    postcard::from_bytes(&postcard::to_allocvec(&n).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_type_check() {
        let bytes = encode(&vec!["a".to_string()], 0).unwrap();
        assert_eq!(
            decode::<Vec<String>>(&bytes).unwrap(),
            vec!["a".to_string()]
        );
        assert_eq!(decode::<Vec<u8>>(&bytes), Err(DecodeError::WrongType));
        assert_eq!(decode::<String>(b"garbage"), Err(DecodeError::Foreign));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode::<Vec<String>>(&flipped), Err(DecodeError::Corrupt));
        assert_eq!(
            decode::<Vec<String>>(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(expiry(&encode(&1u8, 77).unwrap()), Some(77));
    }

    #[test]
    fn counters_read_as_i64() {
        assert_eq!(decode::<i64>(b"-42"), Ok(-42));
        assert!(decode::<u64>(b"42").is_err());
    }
}
