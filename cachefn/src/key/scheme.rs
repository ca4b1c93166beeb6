//! The key scheme: [`Key`], the normal form of user-supplied keys, the
//! escaping of names and text, and the fingerprints that address keys in the
//! local tier.

use std::borrow::Cow;
use std::fmt;

use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};

use crate::Error;

/// The longest key text, before the cache's prefix is added. Prefixes are
/// kept to 48 bytes, so a stored key fits the 250 bytes memcached allows.
pub const MAX_KEY_LEN: usize = 200;
/// `#` and 32 hex digits.
pub(crate) const HASH_TAIL: usize = 33;
/// How much of a long text a hashed key keeps.
pub(crate) const KEEP: usize = MAX_KEY_LEN - HASH_TAIL;

/// A cache key: the text a value is stored under and its 128-bit fingerprint.
///
/// Memoized functions build theirs with the generated `f::key(args)`; any
/// string becomes one with [`Key::new`] (the low-level [`Cache`](crate::Cache)
/// methods take `impl AsRef<str>` and do this for you).
///
/// ```
/// use cachefn::Key;
///
/// let key = Key::new("user:42");
/// assert_eq!(key.as_str(), "user:42");
/// assert_eq!(key.to_string(), "user:42");
///
/// // Spaces and other bytes that some servers reject are hashed away.
/// let odd = Key::new("user name with spaces");
/// assert!(odd.as_str().starts_with("user_name_with_spaces#"));
/// assert!(odd.as_str().len() <= cachefn::MAX_KEY_LEN);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    text: Box<str>,
    fp: u128,
}

impl Key {
    /// The key for an arbitrary string. A string of printable ASCII without
    /// spaces or `#`, at most [`MAX_KEY_LEN`] bytes, is used as is (so
    /// `Key::new(f::key(x))` is the same key); any other string is replaced by
    /// a readable start and a 128-bit hash of the whole.
    pub fn new(key: impl AsRef<str>) -> Key {
        let text = normalize(key.as_ref());
        let fp = fingerprint(text.as_bytes());
        Key {
            text: text.into(),
            fp,
        }
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    #[doc(hidden)]
    pub fn fingerprint(&self) -> u128 {
        self.fp
    }

    pub(crate) fn from_parts(text: &str, fp: u128) -> Key {
        Key {
            text: text.into(),
            fp,
        }
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", &*self.text)
    }
}

/// The fingerprint that addresses a key in the local tier: a function of the
/// key text alone, so that `Key::new(f::key(x))` finds what `f(x)` stored.
///
/// A key of the form `name:vN` or `name:vN:rest` (every memoized function's)
/// hashes its head and its rest separately and combines them, so that a hit
/// hashes only its arguments: the head's hash is computed once per function.
/// Any other text is hashed whole. The fingerprint is used only inside one
/// process; the key text is what other processes see.
#[inline]
pub(crate) fn fingerprint(text: &[u8]) -> u128 {
    match split_head(text) {
        Some((head, rest)) => combine(head_fingerprint(head), rest),
        None => xxh3_128(text),
    }
}

const HEAD_SEED: u64 = 0x6361_6368_6566_6e31; // "cachefn1"
const REST_SEED: u64 = 0x7265_7374_6f66_6b31; // "restofk1"
/// Stands for "no `:rest` at all", which differs from an empty rest.
const NO_REST: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834;

/// `name:vN` and what follows its `:`, if the text has that form.
pub(crate) fn split_head(text: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let colon = text.iter().position(|&b| b == b':')?;
    let after = &text[colon + 1..];
    if colon == 0 || after.first() != Some(&b'v') {
        return None;
    }
    let digits = after[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let head_len = colon + 2 + digits;
    match text.get(head_len) {
        None => Some((text, None)),
        Some(b':') => Some((&text[..head_len], Some(&text[head_len + 1..]))),
        Some(_) => None,
    }
}

/// The hash of a key's `name:vN` head, computed once per function.
pub(crate) fn head_fingerprint(head: &[u8]) -> u128 {
    xxh3_128_with_seed(head, HEAD_SEED)
}

/// The fingerprint of a key from its head's and the text after `name:vN:`
/// (`None`: the key is the head alone).
#[inline]
pub(crate) fn combine(head: u128, rest: Option<&[u8]>) -> u128 {
    let rest = match rest {
        Some(r) => xxh3_128_with_seed(r, REST_SEED),
        None => NO_REST,
    };
    head ^ rest.rotate_left(1)
}

const RAW_SEED: u64 = 0x7261_7761_7267_7331; // "rawargs1"

/// The fingerprint of a memoized call's raw argument stream (see
/// [`raw`](super::raw)): another seed and another rotation than
/// [`combine`]'s, so that it is no key text's fingerprint by construction
/// of the inputs, only by a 128-bit accident.
#[inline(never)]
pub(crate) fn raw_combine(head: u128, stream: &[u8]) -> u128 {
    head ^ xxh3_128_with_seed(stream, RAW_SEED).rotate_left(65)
}

/// The longest raw stream that [`raw_short`] fingerprints (a `u64`
/// argument writes 9 bytes, two of them 18: xxh3).
pub(crate) const SHORT_RAW: usize = 15;

/// An odd 128-bit multiplier (the 64-bit golden ratio and a splitmix
/// constant): multiplying by it is a bijection of `u128`.
const SHORT_MUL: u128 = (0x9E37_79B9_7F4A_7C15_u128 << 64) | 0xBF58_476D_1CE4_E5B9;

/// The fingerprint of a raw stream of at most [`SHORT_RAW`] bytes, given as
/// a little-endian word (zero past the stream) and its length; about
/// a dozen instructions where xxh3 takes some fifty-five.
///
/// No two short streams of one function ever get the same fingerprint,
/// which no hash can promise: the stream and its length are packed into
/// one `u128` (the bytes, zero-padded, and the length in the top byte,
/// which a stream of at most 15 bytes leaves free: an injection), then
/// mixed by bijections only (a multiplication by an odd constant modulo
/// 2^128, `x ^ (x >> 64)`, which brings the product's high half, that
/// depends on every byte, down to the low bits the hot table's set index
/// is taken from, and the XOR with the function's head fingerprint, its
/// seed). A short stream's fingerprint equals a long stream's (xxh3 of a
/// stream of 16 bytes or more) only when that 128-bit hash hits one given
/// value: probability 2^-128 per pair, the bound every key fingerprint has.
#[inline(always)]
pub(crate) fn raw_short(head: u128, stream: u128, len: usize) -> u128 {
    debug_assert!(len <= SHORT_RAW && stream >> (8 * len) == 0);
    let x = stream | ((len as u128) << 120);
    let x = x.wrapping_mul(SHORT_MUL);
    head ^ x ^ (x >> 64)
}

#[inline]
fn is_clean(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'#'
}

fn is_hashed_form(s: &[u8]) -> bool {
    s.len() <= MAX_KEY_LEN
        && s.len() >= HASH_TAIL
        && s[s.len() - HASH_TAIL] == b'#'
        && s[s.len() - 32..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        && s[..s.len() - HASH_TAIL].iter().all(|&b| is_clean(b))
}

/// Write `#` and the hash as 32 lowercase hex digits.
pub(crate) fn write_hash_tail(out: &mut impl Extend<u8>, hash: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend(std::iter::once(b'#'));
    out.extend(
        (0..32)
            .rev()
            .map(|i| HEX[((hash >> (i * 4)) & 0xf) as usize]),
    );
}

/// The normal form of a user-supplied key (see [`Key::new`]).
pub(crate) fn normalize(key: &str) -> Cow<'_, str> {
    let b = key.as_bytes();
    if (b.len() <= MAX_KEY_LEN && b.iter().all(|&c| is_clean(c))) || is_hashed_form(b) {
        return Cow::Borrowed(key);
    }
    let mut out: Vec<u8> = b[..b.len().min(KEEP)]
        .iter()
        .map(|&c| if is_clean(c) { c } else { b'_' })
        .collect();
    write_hash_tail(&mut out, xxh3_128(b));
    Cow::Owned(String::from_utf8(out).expect("ASCII"))
}

/// Key bytes as text. Builders only ever write ASCII (names and arguments
/// are escaped), so this fails only on a bug, as a key error.
pub(crate) fn key_text(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| Error::Key(e.to_string()))
}

/// Where key text goes: a [`KeyBuilder`](super::KeyBuilder) or, for map
/// entries, a `Vec<u8>`.
pub(crate) trait Sink {
    fn push(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn push(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Escape a function name into key-safe characters (`::` becomes `.`).
pub(crate) fn escape_name(name: &str) -> String {
    escape_text(&name.replace("::", "."))
}

/// Escape text into `[A-Za-z0-9_.-]` and `%XX` (so it holds no `:`).
pub(crate) fn escape_text(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    escape_into(text.as_bytes(), &mut out);
    String::from_utf8(out).expect("ASCII")
}

/// The bytes that text keeps as they are; every other byte is `%XX`.
#[inline]
pub(crate) fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

#[inline]
fn percent(b: u8) -> [u8; 3] {
    [
        b'%',
        HEX_UPPER[(b >> 4) as usize],
        HEX_UPPER[(b & 0xf) as usize],
    ]
}

/// Write a string argument. Besides escaping every byte outside
/// `[A-Za-z0-9_.-]`, a string whose first byte is not a letter or `_`, and
/// the words `true`, `false`, `inf`, `nan…`, get their first byte escaped
/// too: a string then never reads like a number, a bool, a float or a
/// marker, so values of an untagged enum (`5` and `"5"`) stay apart.
pub(crate) fn escape_arg<S: Sink + ?Sized>(bytes: &[u8], out: &mut S) {
    let plain_start = bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && !matches!(bytes, b"true" | b"false" | b"inf")
        && !bytes.starts_with(b"nan");
    if plain_start || bytes.is_empty() {
        return escape_into(bytes, out);
    }
    out.push(&percent(bytes[0]));
    if bytes.len() > 1 {
        escape_into(&bytes[1..], out);
    }
}

/// Write bytes as `[A-Za-z0-9_.-]` and `%XX`; nothing at all is `""`.
pub(crate) fn escape_into<S: Sink + ?Sized>(bytes: &[u8], out: &mut S) {
    if bytes.is_empty() {
        out.push(b"\"\"");
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !is_safe(b) {
            out.push(&bytes[start..i]);
            out.push(&percent(b));
            start = i + 1;
        }
    }
    out.push(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_idempotent() {
        for s in ["plain", "with space", "hash#in", &"z".repeat(300), "naïve"] {
            let once = normalize(s).into_owned();
            assert!(once.len() <= MAX_KEY_LEN);
            assert_eq!(normalize(&once), once, "{s}");
            assert!(once.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }

    #[test]
    fn head_and_rest_fingerprints() {
        // `name:vN` and `name:vN:` are different keys.
        assert_ne!(
            Key::new("a:v1").fingerprint(),
            Key::new("a:v1:").fingerprint()
        );
        assert_ne!(
            Key::new("a:v1").fingerprint(),
            Key::new("a:v2").fingerprint()
        );
        // Text without a `name:vN` head is hashed whole.
        assert_eq!(fingerprint(b"plain"), xxh3_128(b"plain"));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_text("a b:c"), "a%20b%3Ac");
        assert_eq!(escape_text(""), "\"\"");
        assert_eq!(escape_name("blog::views::profile"), "blog.views.profile");
        let arg = |s: &str| {
            let mut out = Vec::new();
            escape_arg(s.as_bytes(), &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(arg("alice"), "alice");
        assert_eq!(arg("5"), "%35");
        assert_eq!(arg("true"), "%74rue");
        assert_eq!(arg("nancy"), "%6Eancy");
        assert_eq!(arg("infinity"), "infinity");
    }
}
