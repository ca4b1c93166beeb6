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
use std::collections::BTreeMap;

use parking_lot::RwLock;

use serde::{de::DeserializeOwned, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::Error;

const MAGIC: &[u8; 2] = b"cf";
const FORMAT: u8 = 1;
/// Length of the header in front of every payload.
pub const HEADER_LEN: usize = 24;

/// The fingerprint of a value type: XXH3-64 of its type name, normalised so
/// that types serde writes the same way share it (`&str`, `Box<str>`,
/// `Cow<str>` and `String`; `&[T]` and `Vec<T>`; `Arc<T>`, `Rc<T>`, `Box<T>`
/// and `T`). Changing a type's fields without renaming it is what the
/// `version` option is for.
pub fn type_fingerprint<T: ?Sized>() -> u64 {
    static MEMO: RwLock<BTreeMap<usize, u64>> = RwLock::new(BTreeMap::new());
    // A per-thread, direct-mapped copy of the memo in front of it: the
    // shared lock's reader count would be a cache line that every decoding
    // thread writes.
    const WAYS: usize = 16;
    thread_local! {
        static NEAR: std::cell::Cell<[(usize, u64); WAYS]> =
            const { std::cell::Cell::new([(0, 0); WAYS]) };
    }
    let name = type_name::<T>();
    let id = name.as_ptr() as usize ^ name.len().rotate_left(48);
    let way = (id >> 3) % WAYS;
    if let Ok(Some(fp)) = NEAR.try_with(|n| {
        let (seen, fp) = n.get()[way];
        (seen == id).then_some(fp)
    }) {
        return fp;
    }
    let known = MEMO.read().get(&id).copied();
    let fp = known.unwrap_or_else(|| {
        let fp = xxh3_64(normalize_type_name(name).as_bytes());
        MEMO.write().insert(id, fp);
        fp
    });
    let _ = NEAR.try_with(|n| {
        let mut ways = n.get();
        ways[way] = (id, fp);
        n.set(ways);
    });
    fp
}

/// Rewrite a `type_name` into the shape serde gives it (see [`type_fingerprint`]).
fn normalize_type_name(name: &str) -> String {
    fn ty(s: &mut &str, out: &mut String) {
        *s = s.trim_start();
        if let Some(rest) = s.strip_prefix('\'') {
            // A lifetime: not part of the shape.
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            *s = &rest[end..];
            return;
        }
        if let Some(rest) = s.strip_prefix('&') {
            *s = rest.strip_prefix("mut ").unwrap_or(rest);
            return ty(s, out);
        }
        if let Some(rest) = s.strip_prefix('[') {
            *s = rest;
            let mut inner = String::new();
            ty(s, &mut inner);
            if let Some(rest) = s.strip_prefix(']') {
                *s = rest;
                out.push_str("alloc::vec::Vec<");
                out.push_str(&inner);
                out.push('>');
            } else {
                // An array `[T; N]`: serde writes it as a tuple, keep it.
                let end = s.find(']').map_or(s.len(), |i| i + 1);
                out.push('[');
                out.push_str(&inner);
                out.push_str(&s[..end]);
                *s = &s[end..];
            }
            return;
        }
        if let Some(rest) = s.strip_prefix('(') {
            *s = rest;
            out.push('(');
            list(s, out, ')');
            return;
        }
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(s.len());
        let path = &s[..end];
        *s = &s[end..];
        let transparent = matches!(
            path,
            "alloc::boxed::Box" | "alloc::sync::Arc" | "alloc::rc::Rc" | "alloc::borrow::Cow"
        );
        if transparent && s.starts_with('<') {
            *s = &s[1..];
            // The first argument that is a type (`Cow<'_, str>` starts with a lifetime).
            let written = out.len();
            ty(s, out);
            while out.len() == written && s.starts_with(',') {
                *s = &s[1..];
                ty(s, out);
            }
            // Skip anything else up to the closing '>' (an allocator, say).
            let mut skipped = String::new();
            list(s, &mut skipped, '>');
            return;
        }
        out.push_str(if path == "str" {
            "alloc::string::String"
        } else {
            path
        });
        if let Some(rest) = s.strip_prefix('<') {
            *s = rest;
            out.push('<');
            list(s, out, '>');
        }
    }
    /// Types separated by `, ` up to `close`, which is consumed and written.
    fn list(s: &mut &str, out: &mut String, close: char) {
        loop {
            *s = s.trim_start();
            if let Some(rest) = s.strip_prefix(close) {
                *s = rest;
                out.push(close);
                return;
            }
            if s.is_empty() {
                return;
            }
            let (before, written) = (s.len(), out.len());
            ty(s, out);
            if let Some(rest) = s.strip_prefix(',') {
                *s = rest;
                if out.len() > written {
                    out.push_str(", ");
                }
            } else if s.len() == before {
                // Something this parser does not know (`dyn`, `fn`): keep it verbatim.
                out.push_str(s);
                *s = "";
            }
        }
    }
    let mut s = name;
    let mut out = String::with_capacity(name.len() + 16);
    ty(&mut s, &mut out);
    out.push_str(s);
    out
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
            // Byte 3 (flags) and 12..20 (expiry) are not checked: they change no value.
            if at != 3 && !(12..20).contains(&at) {
                proptest::prop_assert!(decode::<Vec<String>>(&changed).is_err());
            }
            proptest::prop_assert_eq!(decode::<Vec<String>>(&bytes).unwrap(), v);
        }
    }

    #[test]
    fn serde_equivalent_types_share_a_fingerprint() {
        use std::borrow::Cow;
        use std::sync::Arc;
        assert_eq!(type_fingerprint::<&str>(), type_fingerprint::<String>());
        assert_eq!(
            type_fingerprint::<Vec<&str>>(),
            type_fingerprint::<Vec<String>>()
        );
        assert_eq!(type_fingerprint::<&[u32]>(), type_fingerprint::<Vec<u32>>());
        assert_eq!(type_fingerprint::<Arc<str>>(), type_fingerprint::<String>());
        assert_eq!(
            type_fingerprint::<Cow<'static, str>>(),
            type_fingerprint::<String>()
        );
        assert_eq!(
            type_fingerprint::<Box<(u8, &str)>>(),
            type_fingerprint::<(u8, String)>()
        );
        assert_eq!(
            type_fingerprint::<std::collections::HashMap<&str, Vec<&[u8]>>>(),
            type_fingerprint::<std::collections::HashMap<String, Vec<Vec<u8>>>>()
        );
        assert_ne!(type_fingerprint::<[u8; 3]>(), type_fingerprint::<Vec<u8>>());
        assert_ne!(type_fingerprint::<u32>(), type_fingerprint::<u64>());
        assert_ne!(
            type_fingerprint::<Option<String>>(),
            type_fingerprint::<String>()
        );
        assert_eq!(
            normalize_type_name("[&str; 2]"),
            "[alloc::string::String; 2]"
        );
        let v: Vec<&str> = vec!["a"];
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
