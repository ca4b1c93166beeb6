//! How cachefn stores values as bytes (in shared tiers, and in the local
//! tier for values stored through the low-level API): a small header, then
//! the value in `postcard`. Public so that tools can read and write entries
//! the way cachefn does; memoized functions and [`Cache`](crate::Cache)
//! use it for you.
//!
//! ```text
//! 0..2   magic  b"cf"
//! 2      format version (3)
//! 3      flags (0; reserved)
//! 4..12  type fingerprint: XXH3-64 of the value type's serde shape, little endian
//! 12..20 expiry: Unix milliseconds, 0 = never: the entry's *logical* expiry
//!        (lets a reader back-fill a local tier for the entry's remaining
//!        lifetime without asking again; an entry kept past it for
//!        `stale_while_revalidate` / `stale_if_error` is stale after it)
//! 20..24 checksum: low 32 bits of XXH3-64 of the payload
//! 24..28 run time: how long the body took to compute the value, in
//!        milliseconds (u32, saturating), little endian: the `delta` of
//!        `early_refresh`
//! 28..   payload: postcard
//! ```
//!
//! Bytes are untrusted input (another program, another deploy, a truncated
//! write): anything that does not check out (magic, version, type, checksum,
//! a payload postcard rejects or does not consume exactly) decodes as a miss,
//! never as a wrong value and never as a panic. Postcard allocates at most in
//! proportion to the input's length.
//!
//! # The type fingerprint
//!
//! Postcard writes no names, only values in order, so the header names the
//! shape the value was written in: every struct and enum name, field and
//! variant name and order, and primitive kind in the type, all the way down,
//! as the type's `Deserialize` impl asks for them. It is traced once per
//! type and process (a few passes of the `Deserialize` impl over a tracing
//! deserializer, one per enum variant; recursive types and types that
//! validate their input included) and then looked up by `TypeId`, so
//! encoding and decoding cost one lookup more than postcard. A value written
//! by a build whose type has another serde shape (fields reordered, renamed,
//! added or removed, a field's type changed, variants added, removed,
//! reordered or renamed, a nested type changed) reads as a miss; a value
//! written by another build of the same type (another binary, another
//! compiler) is a hit, as the fingerprint depends neither on `type_name`
//! nor on module paths.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Point { x: i32, y: i32 }
//!
//! let bytes = cachefn::codec::encode(&Point { x: 1, y: 2 }, 0).unwrap();
//! assert_eq!(cachefn::codec::decode::<Point>(&bytes), Ok(Point { x: 1, y: 2 }));
//!
//! mod next_deploy {
//!     #[derive(Debug, serde::Serialize, serde::Deserialize)]
//!     pub struct Point { pub y: i32, pub x: i32 }
//! }
//! // The same fields in another order: a miss, not swapped values.
//! assert!(cachefn::codec::decode::<next_deploy::Point>(&bytes).is_err());
//! ```

mod shape;

use std::any::{type_name, TypeId};
use std::collections::BTreeMap;

use cachefn_backends::sync::RwLock;

use serde::{de::DeserializeOwned, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::Error;

const MAGIC: &[u8; 2] = b"cf";
/// 3: the header carries the body's run time (2: no run time; 1: the type
/// fingerprint was the type's name, which read a value written by a build
/// that reordered its fields with the values swapped). Bytes of an older
/// format read as a miss.
const FORMAT: u8 = 3;
/// Length of the header in front of every payload.
pub const HEADER_LEN: usize = 28;

/// The fingerprint of a value type: XXH3-64 of its serde shape, traced once
/// per type and process through its `Deserialize` impl (see
/// [`shape`](self#the-type-fingerprint)), then looked up by `TypeId`.
///
/// Types that serde reads the same way share it (`String`, `Box<str>` and
/// `Cow<str>`; `Vec<T>` and `VecDeque<T>`; `Box<T>` and `T`), so
/// a value written as one reads as the other; a change in the shape (a
/// field, a variant, a field's type, a nested type) changes it. Nothing in
/// it depends on the compiler, the crate name or module paths.
pub fn type_fingerprint<T: DeserializeOwned + 'static>() -> u64 {
    static MEMO: RwLock<BTreeMap<TypeId, u64>> = RwLock::new(BTreeMap::new());
    // A per-thread, direct-mapped copy of the memo in front of it: the
    // shared lock's reader count would be a cache line that every decoding
    // thread writes.
    const WAYS: usize = 16;
    thread_local! {
        static NEAR: std::cell::Cell<[(Option<TypeId>, u64); WAYS]> =
            const { std::cell::Cell::new([(None, 0); WAYS]) };
    }
    let id = TypeId::of::<T>();
    let way = {
        /// Keeps what `TypeId`'s `Hash` writes: it is already a hash.
        #[derive(Default)]
        struct Keep(u64);
        impl std::hash::Hasher for Keep {
            fn finish(&self) -> u64 {
                self.0
            }
            fn write(&mut self, bytes: &[u8]) {
                for b in bytes {
                    self.0 = self.0.rotate_left(8) ^ u64::from(*b);
                }
            }
            fn write_u64(&mut self, n: u64) {
                self.0 ^= n;
            }
        }
        let mut h = Keep::default();
        std::hash::Hash::hash(&id, &mut h);
        (h.0 ^ h.0 >> 29) as usize % WAYS
    };
    if let Ok(Some(fp)) = NEAR.try_with(|n| {
        let (seen, fp) = n.get()[way];
        (seen == Some(id)).then_some(fp)
    }) {
        return fp;
    }
    let known = MEMO.read().get(&id).copied();
    let fp = known.unwrap_or_else(|| {
        // Traced outside the lock: another thread tracing the same type at
        // the same time finds the same fingerprint.
        let fp = shape::trace::<T>().fingerprint;
        *MEMO.write().entry(id).or_insert(fp)
    });
    let _ = NEAR.try_with(|n| {
        let mut ways = n.get();
        ways[way] = (Some(id), fp);
        n.set(ways);
    });
    fp
}

/// Encode `value` with an expiry (Unix ms, 0 = never).
///
/// `T: DeserializeOwned` because the header names the shape `T` is read
/// back with (see [`type_fingerprint`]).
pub fn encode<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    expires_unix_ms: u64,
) -> Result<Vec<u8>, Error> {
    encode_timed(value, expires_unix_ms, 0)
}

/// Encode `value` with its logical expiry (Unix ms, 0 = never) and the time
/// the body took to compute it (milliseconds; see [`run_time_ms`]).
///
/// ```
/// let bytes = cachefn::codec::encode_timed(&7u32, 1_000, 250).unwrap();
/// assert_eq!(cachefn::codec::expiry(&bytes), Some(1_000));
/// assert_eq!(cachefn::codec::run_time_ms(&bytes), Some(250));
/// assert_eq!(cachefn::codec::decode::<u32>(&bytes), Ok(7));
/// ```
pub fn encode_timed<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    expires_unix_ms: u64,
    run_time_ms: u32,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(HEADER_LEN + 32);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(0);
    out.extend_from_slice(&type_fingerprint::<T>().to_le_bytes());
    out.extend_from_slice(&expires_unix_ms.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&run_time_ms.to_le_bytes());
    let mut out = postcard::to_extend(value, out)
        .map_err(|e| Error::Encode(format!("{e} ({})", type_name::<T>())))?;
    let sum = xxh3_64(&out[HEADER_LEN..]) as u32;
    out[20..24].copy_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// The body's run time (milliseconds) recorded in encoded bytes.
pub fn run_time_ms(bytes: &[u8]) -> Option<u32> {
    header_ok(bytes).ok()?;
    Some(u32::from_le_bytes(bytes[24..28].try_into().ok()?))
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// Random bytes never panic and never decode.
        #[test]
        fn random_bytes_are_a_miss(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            proptest::prop_assert!(decode::<Vec<String>>(&bytes).is_err() || bytes.starts_with(MAGIC));
            let _ = decode::<(String, u64, Option<Vec<u8>>)>(&bytes);
        }

        /// Every truncation and every single-byte change of a valid value is a miss.
        #[test]
        fn damaged_values_are_a_miss(v in proptest::collection::vec(".{0,20}", 0..5), cut in 0usize..400, flip in 0usize..400) {
            let bytes = encode(&v, 0).unwrap();
            let cut = cut % bytes.len();
            proptest::prop_assert!(decode::<Vec<String>>(&bytes[..cut]).is_err());
            let mut changed = bytes.clone();
            let at = flip % bytes.len();
            changed[at] ^= 0x5a;
            // Byte 3 (flags), 12..20 (expiry) and 24..28 (run time) are not
            // checked: they change no value.
            if at != 3 && !(12..20).contains(&at) && !(24..28).contains(&at) {
                proptest::prop_assert!(decode::<Vec<String>>(&changed).is_err());
            }
            proptest::prop_assert_eq!(decode::<Vec<String>>(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn serde_equivalent_types_share_a_fingerprint() {
        use std::borrow::Cow;
        use std::collections::{BTreeMap, HashMap, VecDeque};
        assert_eq!(type_fingerprint::<Box<str>>(), type_fingerprint::<String>());
        assert_eq!(
            type_fingerprint::<Cow<'static, str>>(),
            type_fingerprint::<String>()
        );
        assert_eq!(
            type_fingerprint::<VecDeque<u32>>(),
            type_fingerprint::<Vec<u32>>()
        );
        assert_eq!(
            type_fingerprint::<Box<(u8, Box<str>)>>(),
            type_fingerprint::<(u8, String)>()
        );
        assert_eq!(
            type_fingerprint::<HashMap<Box<str>, Vec<Vec<u8>>>>(),
            type_fingerprint::<BTreeMap<String, Vec<Vec<u8>>>>()
        );
        assert_ne!(type_fingerprint::<[u8; 3]>(), type_fingerprint::<Vec<u8>>());
        assert_ne!(type_fingerprint::<[u8; 3]>(), type_fingerprint::<[u8; 4]>());
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<u64>());
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<i32>());
        assert_ne!(type_fingerprint::<Vec<u8>>(), type_fingerprint::<String>());
        assert_ne!(
            type_fingerprint::<Option<String>>(),
            type_fingerprint::<String>()
        );
        let v: Vec<Box<str>> = vec!["a".into()];
        assert_eq!(
            decode::<Vec<String>>(&encode(&v, 0).unwrap()).unwrap(),
            vec!["a".to_string()]
        );
    }

    #[test]
    fn counters_read_as_i64() {
        assert_eq!(decode::<i64>(b"-42"), Ok(-42));
        assert!(decode::<u64>(b"42").is_err());
    }
}
