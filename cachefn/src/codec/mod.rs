//! How cachefn stores values as bytes (in shared tiers, and in the local
//! tier for values stored through the low-level API): a small header, then
//! the value in `postcard`. Public so that tools can read and write entries
//! the way cachefn does; memoized functions and [`Cache`](crate::Cache)
//! use it for you.
//!
//! ```text
//! 0..2   magic  b"cf"
//! 2      format version (4)
//! 3      flags: bit 0 set when a MAC follows the check
//! 4..12  type fingerprint: the first 8 bytes of BLAKE3 of the value type's
//!        serde shape, little endian
//! 12..20 expiry: Unix milliseconds, 0 = never: the entry's *logical* expiry
//!        (lets a reader back-fill a local tier for the entry's remaining
//!        lifetime without asking again; an entry kept past it for
//!        `stale_while_revalidate` / `stale_if_error` is stale after it)
//! 20..24 run time: how long the body took to compute the value, in
//!        milliseconds (u32, saturating), little endian: the `delta` of
//!        `early_refresh`
//! 24..40 check: the first 16 bytes of keyed BLAKE3 (a fixed, public key)
//!        over the key the value is stored under, the header's first 24
//!        bytes and the payload
//! 40..72 MAC (only with flag bit 0): keyed BLAKE3, under a key derived
//!        from the deployment's signing key, over the same
//! ..     payload: postcard
//! ```
//!
//! Bytes are untrusted input (another program, another deploy, a truncated
//! write, whoever can write to the server): anything that does not check
//! out (magic, version, type, check, MAC, a payload postcard rejects or
//! does not consume exactly) decodes as a miss, never as a wrong value and
//! never as a panic. Postcard allocates at most in proportion to the
//! input's length.
//!
//! # Bound to its key
//!
//! The check covers the key the value is stored under (`prefix:key`, what
//! the server calls it), so a value read under any other key (copied by a
//! migration, a rename, or by whoever can write to the server) is a miss:
//! [`DecodeError::WrongKey`]. A long key's stored text ends in a digest of
//! the whole key, so the check binds the value to the whole key.
//!
//! The check is public (anyone can compute it): it stops mistakes and
//! copies, not a writer who means harm. A cache built with
//! [`CacheBuilder::signing_key`](crate::CacheBuilder::signing_key) also
//! signs what it writes and accepts from its shared tier only values whose
//! MAC verifies under its signing key or a fallback key; that stops forged
//! values, though not the replay of an older value of the same key before
//! it expires.
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
//! use cachefn::codec::{self, DecodeError};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Point { x: i32, y: i32 }
//!
//! let bytes = codec::encode("app:point:1", &Point { x: 1, y: 2 }, 0).unwrap();
//! assert_eq!(codec::decode::<Point>("app:point:1", &bytes), Ok(Point { x: 1, y: 2 }));
//! // Under another key: a miss.
//! assert_eq!(codec::decode::<Point>("app:point:2", &bytes), Err(DecodeError::WrongKey));
//!
//! mod next_deploy {
//!     #[derive(Debug, serde::Serialize, serde::Deserialize)]
//!     pub struct Point { pub y: i32, pub x: i32 }
//! }
//! // The same fields in another order: a miss, not swapped values.
//! assert!(codec::decode::<next_deploy::Point>("app:point:1", &bytes).is_err());
//! ```

mod shape;

use std::any::{type_name, TypeId};
use std::collections::BTreeMap;
use std::fmt;

use cachefn_backends::sync::RwLock;

use serde::{de::DeserializeOwned, Serialize};

use crate::Error;

const MAGIC: &[u8; 2] = b"cf";
/// 4: the header carries a check bound to the key and, optionally, a MAC
/// (3: an XXH3 checksum of the payload alone). Bytes of an older format
/// read as a miss.
const FORMAT: u8 = 4;
/// Length of the header in front of an unsigned payload.
pub const HEADER_LEN: usize = 40;
/// Length of the header in front of a signed payload.
const SIGNED_HEADER_LEN: usize = HEADER_LEN + MAC_LEN;
/// What the check and the MAC cover of the header: what comes before them.
const COVERED: usize = 24;
const CHECK: std::ops::Range<usize> = 24..40;
const MAC_LEN: usize = 32;
const SIGNED: u8 = 1;

/// The key of the check: fixed and public (it separates cachefn's checks
/// from any other use of BLAKE3, it is no secret).
const CHECK_KEY: [u8; 32] = *b"cachefn value check, format 4 ..";

/// What a value is bound to and who signs it: the key it is stored under
/// (in parts, hashed as one text), and the signing keys, if any.
#[derive(Clone, Copy)]
pub(crate) struct Binding<'a> {
    pub(crate) key: &'a [&'a str],
    pub(crate) signer: Option<&'a Signer>,
}

impl<'a> Binding<'a> {
    /// A value bound to `key`, unsigned.
    pub(crate) fn to(key: &'a [&'a str]) -> Self {
        Binding { key, signer: None }
    }
}

/// The key a value kept only in this process is bound to (for reading it
/// as another type): no stored key is empty, so such bytes never check out
/// when read from a shared tier.
pub(crate) const IN_PROCESS: &[&str] = &[""];

/// The signing keys of a cache: derived from the secrets it was given, and
/// never shown (its `Debug` says how many there are).
pub(crate) struct Signer {
    /// The key values are signed with, then the fallback keys still
    /// accepted on read.
    keys: Vec<[u8; 32]>,
}

impl Signer {
    /// `current` signs; `current` and `fallbacks` verify.
    pub(crate) fn new(current: &[u8], fallbacks: &[Vec<u8>]) -> Signer {
        let derive =
            |secret: &[u8]| blake3::derive_key("cachefn 2026-12 value signing key", secret);
        Signer {
            keys: std::iter::once(current)
                .chain(fallbacks.iter().map(Vec::as_slice))
                .map(derive)
                .collect(),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({} keys)", self.keys.len())
    }
}

/// BLAKE3 under `key` of the stored key's parts (length first), the
/// covered header and the payload.
fn digest(key: &[u8; 32], stored: &[&str], header: &[u8], payload: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    let len: usize = stored.iter().map(|p| p.len()).sum();
    h.update(&(len as u64).to_le_bytes());
    for part in stored {
        h.update(part.as_bytes());
    }
    h.update(header);
    h.update(payload);
    h.finalize()
}

/// The fingerprint of a value type: the first 8 bytes of BLAKE3 of its
/// serde shape, traced once per type and process through its `Deserialize`
/// impl (see [`shape`](self#the-type-fingerprint)), then looked up by
/// `TypeId`.
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

/// Encode `value`, stored under `key` (the key as the server names it,
/// `prefix:key`; see [`Cache::storage_key`](crate::Cache::storage_key)),
/// with an expiry (Unix ms, 0 = never).
///
/// `T: DeserializeOwned` because the header names the shape `T` is read
/// back with (see [`type_fingerprint`]).
pub fn encode<T: Serialize + DeserializeOwned + 'static>(
    key: &str,
    value: &T,
    expires_unix_ms: u64,
) -> Result<Vec<u8>, Error> {
    encode_timed(key, value, expires_unix_ms, 0)
}

/// Encode `value`, stored under `key`, with its logical expiry (Unix ms,
/// 0 = never) and the time the body took to compute it (milliseconds; see
/// [`run_time_ms`]).
///
/// ```
/// let bytes = cachefn::codec::encode_timed("app:n", &7u32, 1_000, 250).unwrap();
/// assert_eq!(cachefn::codec::expiry(&bytes), Some(1_000));
/// assert_eq!(cachefn::codec::run_time_ms(&bytes), Some(250));
/// assert_eq!(cachefn::codec::decode::<u32>("app:n", &bytes), Ok(7));
/// ```
pub fn encode_timed<T: Serialize + DeserializeOwned + 'static>(
    key: &str,
    value: &T,
    expires_unix_ms: u64,
    run_time_ms: u32,
) -> Result<Vec<u8>, Error> {
    encode_bound(value, expires_unix_ms, run_time_ms, Binding::to(&[key]))
}

/// Encode `value` bound (and, with a signer, signed) as `binding` says.
pub(crate) fn encode_bound<T: Serialize + DeserializeOwned + 'static>(
    value: &T,
    expires_unix_ms: u64,
    run_time_ms: u32,
    binding: Binding<'_>,
) -> Result<Vec<u8>, Error> {
    let header_len = match binding.signer {
        Some(_) => SIGNED_HEADER_LEN,
        None => HEADER_LEN,
    };
    let mut out = Vec::with_capacity(header_len + 32);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.push(if binding.signer.is_some() { SIGNED } else { 0 });
    out.extend_from_slice(&type_fingerprint::<T>().to_le_bytes());
    out.extend_from_slice(&expires_unix_ms.to_le_bytes());
    out.extend_from_slice(&run_time_ms.to_le_bytes());
    out.resize(header_len, 0);
    let mut out = postcard::to_extend(value, out)
        .map_err(|e| Error::Encode(format!("{e} ({})", type_name::<T>())))?;
    let (header, payload) = out.split_at(header_len);
    let check = digest(&CHECK_KEY, binding.key, &header[..COVERED], payload);
    let mac = binding
        .signer
        .map(|s| digest(&s.keys[0], binding.key, &header[..COVERED], payload));
    out[CHECK].copy_from_slice(&check.as_bytes()[..CHECK.len()]);
    if let Some(mac) = mac {
        out[HEADER_LEN..SIGNED_HEADER_LEN].copy_from_slice(mac.as_bytes());
    }
    Ok(out)
}

/// The body's run time (milliseconds) recorded in encoded bytes.
pub fn run_time_ms(bytes: &[u8]) -> Option<u32> {
    header_len(bytes).ok()?;
    Some(u32::from_le_bytes(bytes[20..24].try_into().ok()?))
}

/// Why bytes did not decode. Every variant reads as a cache miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Not written by cachefn, or by an incompatible format version.
    Foreign,
    /// Written for another type.
    WrongType,
    /// Written under another key (or damaged: the check covers the payload).
    WrongKey,
    /// Not signed, or signed with a key the reader does not accept (only
    /// for a cache with a signing key).
    Unauthenticated,
    /// The payload does not match its type: postcard rejects it.
    Corrupt,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Foreign => "not a value in cachefn's format (or an older format)",
            DecodeError::WrongType => "a value of another type",
            DecodeError::WrongKey => "a value stored under another key, or damaged",
            DecodeError::Unauthenticated => "a value whose signature does not verify",
            DecodeError::Corrupt => "a payload that does not decode",
        })
    }
}

impl std::error::Error for DecodeError {}

/// The expiry (Unix ms, 0 = never) recorded in encoded bytes.
pub fn expiry(bytes: &[u8]) -> Option<u64> {
    header_len(bytes).ok()?;
    Some(u64::from_le_bytes(bytes[12..20].try_into().ok()?))
}

/// The length of the header of `bytes`, if they are in this format.
fn header_len(bytes: &[u8]) -> Result<usize, DecodeError> {
    if bytes.len() < HEADER_LEN || &bytes[..2] != MAGIC || bytes[2] != FORMAT {
        return Err(DecodeError::Foreign);
    }
    match bytes[3] {
        0 => Ok(HEADER_LEN),
        SIGNED if bytes.len() >= SIGNED_HEADER_LEN => Ok(SIGNED_HEADER_LEN),
        _ => Err(DecodeError::Foreign),
    }
}

/// Decode bytes written by [`encode`] for the same `T` under the same
/// `key` (the key as the server names it, `prefix:key`).
pub fn decode<T: DeserializeOwned + 'static>(key: &str, bytes: &[u8]) -> Result<T, DecodeError> {
    decode_bound(bytes, Some(Binding::to(&[key])))
}

/// Decode bytes for a `T`. `binding: Some`: the bytes come from outside
/// this process (a shared tier): the check must verify under its key and,
/// with a signer, the MAC under one of its keys. `None`: the bytes were
/// made, or checked, by this process already (the local tier keeps them).
pub(crate) fn decode_bound<T: DeserializeOwned + 'static>(
    bytes: &[u8],
    binding: Option<Binding<'_>>,
) -> Result<T, DecodeError> {
    let header_len = header_len(bytes)?;
    let fp = u64::from_le_bytes(bytes[4..12].try_into().expect("8 bytes"));
    if fp != type_fingerprint::<T>() {
        return Err(DecodeError::WrongType);
    }
    let payload = &bytes[header_len..];
    if let Some(b) = binding {
        let covered = &bytes[..COVERED];
        match b.signer {
            // The MAC covers what the check does: it is enough.
            Some(signer) => {
                if header_len != SIGNED_HEADER_LEN {
                    return Err(DecodeError::Unauthenticated);
                }
                let mac: [u8; MAC_LEN] = bytes[HEADER_LEN..SIGNED_HEADER_LEN]
                    .try_into()
                    .expect("32 bytes");
                let mac = blake3::Hash::from(mac);
                // `Hash` compares in constant time.
                if !signer
                    .keys
                    .iter()
                    .any(|k| digest(k, b.key, covered, payload) == mac)
                {
                    return Err(DecodeError::Unauthenticated);
                }
            }
            None => {
                let check = digest(&CHECK_KEY, b.key, covered, payload);
                if bytes[CHECK] != check.as_bytes()[..CHECK.len()] {
                    return Err(DecodeError::WrongKey);
                }
            }
        }
    }
    match postcard::take_from_bytes::<T>(payload) {
        Ok((value, [])) => Ok(value),
        _ => Err(DecodeError::Corrupt),
    }
}

/// Whether two encodings hold the same value: the same type, expiry, run
/// time and payload, whatever key they are bound to and whether they are
/// signed (a local copy encoded for this process against the bytes the
/// shared tier holds). Nothing is verified: equal values are equal,
/// whoever wrote them.
pub(crate) fn same_value(a: &[u8], b: &[u8]) -> bool {
    let (Ok(la), Ok(lb)) = (header_len(a), header_len(b)) else {
        return a == b;
    };
    a[..3] == b[..3] && a[4..COVERED] == b[4..COVERED] && a[la..] == b[lb..]
}

/// A counter as Redis and memcached keep it (`INCRBY`, `incr`): plain
/// decimal text, which nobody signs. Read only by [`Cache::get`] and its
/// siblings as an `i64`, never by a memoized function or `get_or_set`.
///
/// [`Cache::get`]: crate::Cache::get
pub(crate) fn decode_counter<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Option<T> {
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

    const K: &str = "app:f:v1:1";

    #[test]
    fn round_trip_and_type_check() {
        let bytes = encode(K, &vec!["a".to_string()], 0).unwrap();
        assert_eq!(
            decode::<Vec<String>>(K, &bytes).unwrap(),
            vec!["a".to_string()]
        );
        assert_eq!(decode::<Vec<u8>>(K, &bytes), Err(DecodeError::WrongType));
        assert_eq!(decode::<String>(K, b"garbage"), Err(DecodeError::Foreign));
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode::<Vec<String>>(K, &flipped),
            Err(DecodeError::WrongKey)
        );
        assert_eq!(
            decode::<Vec<String>>(K, &bytes[..bytes.len() - 1]),
            Err(DecodeError::WrongKey)
        );
        assert_eq!(expiry(&encode(K, &1u8, 77).unwrap()), Some(77));
    }

    /// A value is bound to the key it was written under: any other key,
    /// however close, reads a miss; so does a plain counter for a
    /// memoized `i64`, and a value made for this process only.
    #[test]
    fn values_are_bound_to_their_key() {
        let bytes = encode(K, &true, 0).unwrap();
        assert_eq!(decode::<bool>(K, &bytes), Ok(true));
        for other in ["app:f:v1:2", "app:f:v1:1 ", "ap:pf:v1:1", "", "app:f:v1:"] {
            assert_eq!(
                decode::<bool>(other, &bytes),
                Err(DecodeError::WrongKey),
                "{other}"
            );
        }
        // The parts of a key are hashed as one text.
        let parts = encode_bound(&1u8, 0, 0, Binding::to(&["app", ":", "f:v1:1"])).unwrap();
        assert_eq!(decode::<u8>(K, &parts), Ok(1));
        assert!(
            decode::<i64>(K, b"42").is_err(),
            "a counter is not a bound value"
        );
        assert_eq!(decode_counter::<i64>(b"-42"), Some(-42));
        assert_eq!(decode_counter::<u64>(b"42"), None);
        let local = encode_bound(&1u8, 0, 0, Binding::to(IN_PROCESS)).unwrap();
        assert_eq!(decode::<u8>(K, &local), Err(DecodeError::WrongKey));
        assert_eq!(decode_bound::<u8>(&local, None), Ok(1));
    }

    /// Signed values verify under the signing key or a fallback, and
    /// nothing else: unsigned values, values signed with another key,
    /// values signed for another key, and damaged MACs are misses. A
    /// reader without a signing key still reads a signed value (by its
    /// check).
    #[test]
    fn signed_values_verify_only_under_accepted_keys() {
        let old = Signer::new(&[1; 32], &[]);
        let new = Signer::new(&[2; 32], &[vec![1; 32]]);
        let other = Signer::new(&[3; 32], &[]);
        let signed = |s: &Signer, key: &str| {
            let parts = [key];
            encode_bound(
                &7u32,
                0,
                0,
                Binding {
                    key: &parts,
                    signer: Some(s),
                },
            )
            .unwrap()
        };
        let read = |s: &Signer, key: &str, bytes: &[u8]| {
            let parts = [key];
            decode_bound::<u32>(
                bytes,
                Some(Binding {
                    key: &parts,
                    signer: Some(s),
                }),
            )
        };
        let by_new = signed(&new, K);
        let by_old = signed(&old, K);
        assert_eq!(read(&new, K, &by_new), Ok(7));
        assert_eq!(read(&new, K, &by_old), Ok(7), "a fallback key is accepted");
        assert_eq!(read(&old, K, &by_new), Err(DecodeError::Unauthenticated));
        assert_eq!(read(&other, K, &by_new), Err(DecodeError::Unauthenticated));
        assert_eq!(
            read(&new, "app:f:v1:2", &by_new),
            Err(DecodeError::Unauthenticated)
        );
        let unsigned = encode(K, &7u32, 0).unwrap();
        assert_eq!(read(&new, K, &unsigned), Err(DecodeError::Unauthenticated));
        // Every byte but the check's (the MAC covers what the check does).
        for at in (0..by_new.len()).filter(|at| !CHECK.contains(at)) {
            let mut changed = by_new.clone();
            changed[at] ^= 0x20;
            assert!(read(&new, K, &changed).is_err(), "byte {at}");
        }
        assert_eq!(decode::<u32>(K, &by_new), Ok(7));
        assert_eq!(format!("{new:?}"), "Signer(2 keys)");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, failure_persistence: None, ..Default::default() })]

        /// Random bytes never panic and never decode.
        #[test]
        fn random_bytes_are_a_miss(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            proptest::prop_assert!(decode::<Vec<String>>(K, &bytes).is_err());
            let _ = decode::<(String, u64, Option<Vec<u8>>)>(K, &bytes);
        }

        /// Every truncation and every single-byte change of a valid value
        /// is a miss: the check covers the whole header and the payload.
        #[test]
        fn damaged_values_are_a_miss(v in proptest::collection::vec(".{0,20}", 0..5), cut in 0usize..400, flip in 0usize..400) {
            let bytes = encode(K, &v, 0).unwrap();
            let cut = cut % bytes.len();
            proptest::prop_assert!(decode::<Vec<String>>(K, &bytes[..cut]).is_err());
            let mut changed = bytes.clone();
            let at = flip % bytes.len();
            changed[at] ^= 0x5a;
            proptest::prop_assert!(decode::<Vec<String>>(K, &changed).is_err());
            proptest::prop_assert_eq!(decode::<Vec<String>>(K, &bytes).unwrap(), v);
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
            decode::<Vec<String>>(K, &encode(K, &v, 0).unwrap()).unwrap(),
            vec!["a".to_string()]
        );
    }
}
