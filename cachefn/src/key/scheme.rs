//! The key scheme: [`Key`], the normal form of user-supplied keys, the
//! escaping of names and text, and the fingerprints that address keys in
//! this process's tables.
//!
//! Two kinds of hash, for two jobs:
//!
//! - **What leaves the process** (the stored key text, which other
//!   processes and deploys read) ends, when it is long or has bytes a
//!   server would reject, in 192 bits of BLAKE3 of the whole text: nobody
//!   can find two texts with one stored key.
//! - **In-process fingerprints** (the local tier's table, each thread's
//!   hot entries, single-flight) only say where to look: SipHash-1-3 (what
//!   std's `HashMap`s use), keyed with secrets drawn from std's
//!   `RandomState` once per process, so that nobody can precompute
//!   arguments that collide; every hit then compares the full key with the
//!   caller's. A collision costs a miss, never a wrong value.

use std::borrow::Cow;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::sip::{sip13, SipKey};
use crate::Error;

/// The longest stored key text, before the cache's prefix is added.
/// Prefixes are kept to 48 bytes, so a stored key fits the 250 bytes
/// memcached allows.
pub const MAX_KEY_LEN: usize = 200;
/// Bytes of BLAKE3 that end a hashed key: 192 bits.
const DIGEST_BYTES: usize = 24;
/// `#` and the digest in hex.
pub(crate) const HASH_TAIL: usize = 1 + 2 * DIGEST_BYTES;
/// How much of a long text a hashed key keeps.
pub(crate) const KEEP: usize = MAX_KEY_LEN - HASH_TAIL;

/// A cache key: the text it was made from, the text it is stored under,
/// and its in-process fingerprint.
///
/// Memoized functions build theirs with the generated `f::key(args)`; any
/// string becomes one with [`Key::new`] (the low-level [`Cache`](crate::Cache)
/// methods take `impl AsRef<str>` and do this for you).
///
/// A text of printable ASCII without spaces or `#`, at most
/// [`MAX_KEY_LEN`] bytes, is stored as it is. Any other text is stored as a
/// readable start, `#` and 192 bits of BLAKE3 of the whole text, so that
/// two texts never share a stored key; [`Key::as_str`] keeps the whole
/// text, and `Key::new(key.as_str())` is the same key.
///
/// ```
/// use cachefn::{Cache, Key};
///
/// let key = Key::new("user:42");
/// assert_eq!(key.as_str(), "user:42");
/// assert_eq!(key.to_string(), "user:42");
///
/// // Spaces and other bytes that some servers reject are hashed away
/// // in the stored key; the key keeps its text.
/// let odd = Key::new("user name with spaces");
/// assert_eq!(odd.as_str(), "user name with spaces");
/// let stored = Cache::memory().storage_key(&odd);
/// assert!(stored.starts_with("cachefn:user_name_with_spaces#"));
/// assert_eq!(Key::new(odd.as_str()), odd);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The whole text.
    text: Box<str>,
    /// The stored text, when it is not `text` itself.
    stored: Option<Box<str>>,
    fp: u128,
}

impl Key {
    /// The key for an arbitrary string (see [`Key`]).
    pub fn new(key: impl AsRef<str>) -> Key {
        let text = key.as_ref();
        let normal = normalize(text);
        let fp = fingerprint(normal.as_bytes());
        Key {
            text: text.into(),
            stored: match normal {
                Cow::Borrowed(_) => None,
                Cow::Owned(s) => Some(s.into()),
            },
            fp,
        }
    }

    /// The whole key text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The text the key is stored under (without the cache's prefix): the
    /// text itself, or its hashed form.
    pub(crate) fn stored(&self) -> &str {
        self.stored.as_deref().unwrap_or(&self.text)
    }

    #[doc(hidden)]
    pub fn fingerprint(&self) -> u128 {
        self.fp
    }

    /// A key whose stored text `stored` is already in normal form, made
    /// from the whole `text` (`None`: `stored` is the whole text).
    pub(crate) fn from_parts(text: Option<String>, stored: &str, fp: u128) -> Key {
        match text {
            Some(text) => Key {
                text: text.into(),
                stored: Some(stored.into()),
                fp,
            },
            None => Key {
                text: stored.into(),
                stored: None,
                fp,
            },
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

// ----- in-process fingerprints ---------------------------------------------

/// The per-process secret of in-process fingerprints: a SipHash key for
/// each domain (see [`keyed`]).
struct Secret {
    keys: [SipKey; DOMAINS],
    /// Every fingerprint is [`COLLIDING`] (see [`collide_all_fingerprints`]).
    collide: bool,
}

static SECRET: OnceLock<Secret> = OnceLock::new();
static COLLIDE: AtomicBool = AtomicBool::new(false);
/// What every fingerprint is in a process that asked them all to collide.
const COLLIDING: u128 = 0x5eed_5eed_5eed_5eed_5eed_5eed_5eed_5eed;

#[inline(always)]
fn secret() -> &'static Secret {
    SECRET.get_or_init(|| {
        // std's `RandomState` draws 128 random bits per process (from the
        // OS) and hashes with SipHash-1-3 under them: each domain's key is
        // two outputs of that keyed hash (a PRF), unknown outside.
        let state = RandomState::new();
        let half = |domain: usize, which: u8| state.hash_one((domain as u64, which));
        Secret {
            keys: std::array::from_fn(|d| SipKey {
                k0: half(d, 0),
                k1: half(d, 1),
            }),
            collide: COLLIDE.load(Ordering::SeqCst),
        }
    })
}

/// Make every in-process fingerprint of this process one constant, so that
/// every key collides with every other in every table: what a test does to
/// prove that hits are verified against the full key, not trusted to the
/// hash. Not an API: call it first thing in a test process (it panics once
/// a fingerprint has been computed without it).
#[doc(hidden)]
pub fn collide_all_fingerprints() {
    COLLIDE.store(true, Ordering::SeqCst);
    assert!(
        secret().collide,
        "collide_all_fingerprints must be called before the first fingerprint"
    );
}

/// Domains of the keyed hash, each with its own key: a head, the rest of a
/// key, a whole key, a raw stream.
const HEAD: usize = 0;
const REST: usize = 1;
const WHOLE: usize = 2;
const RAW: usize = 3;
const DOMAINS: usize = 4;

/// The keyed 64-bit hash of `bytes` in `domain` (SipHash-1-3 under the
/// domain's secret key), spread over 128 bits (the high half a bijection
/// of the low one: the tables take their indices from either half).
#[inline(always)]
fn keyed(domain: usize, bytes: &[u8]) -> u128 {
    let s = secret();
    if s.collide {
        return COLLIDING;
    }
    let x = sip13(s.keys[domain], bytes);
    let hi = (x ^ (x >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    u128::from(x) | (u128::from(hi) << 64)
}

/// The fingerprint that addresses a key in the local tier: a function of the
/// stored key text alone, so that `Key::new(f::key(x))` finds what `f(x)`
/// stored.
///
/// A key of the form `name:vN` or `name:vN:rest` (every memoized function's)
/// hashes its head and its rest separately and combines them, so that a hit
/// hashes only its arguments: the head's hash is computed once per function.
/// Any other text is hashed whole.
#[inline]
pub(crate) fn fingerprint(text: &[u8]) -> u128 {
    match split_head(text) {
        Some((head, rest)) => combine(head_fingerprint(head), rest),
        None => keyed(WHOLE, text),
    }
}

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
    keyed(HEAD, head)
}

/// The fingerprint of a key from its head's and the text after `name:vN:`
/// (`None`: the key is the head alone).
#[inline]
pub(crate) fn combine(head: u128, rest: Option<&[u8]>) -> u128 {
    let rest = match rest {
        Some(r) => keyed(REST, r),
        None => NO_REST,
    };
    head ^ rest.rotate_left(1)
}

/// The fingerprint of a memoized call's raw argument stream (see
/// [`raw`](super::raw)) longer than [`SHORT_RAW`] bytes. It only says where
/// to look: a hot entry found under it serves only if its own stream equals
/// the caller's.
#[inline(never)]
pub(crate) fn raw_combine(head: u128, stream: &[u8]) -> u128 {
    head ^ keyed(RAW, stream).rotate_left(65)
}

/// The longest raw stream that [`raw_short`] fingerprints (a `u64`
/// argument writes 9 bytes).
pub(crate) const SHORT_RAW: usize = 15;

/// An odd 128-bit multiplier (the 64-bit golden ratio and a splitmix
/// constant): multiplying by it is a bijection of `u128`.
const SHORT_MUL: u128 = (0x9E37_79B9_7F4A_7C15_u128 << 64) | 0xBF58_476D_1CE4_E5B9;

/// The fingerprint of a raw stream of at most [`SHORT_RAW`] bytes, given as
/// a little-endian word (zero past the stream) and its length; about
/// a dozen instructions.
///
/// No two short streams of one function ever get the same fingerprint, so
/// a hot entry found under it needs no other check: the stream and its
/// length are packed into one `u128` (the bytes, zero-padded, and the
/// length in the top byte, which a stream of at most 15 bytes leaves free:
/// an injection), then mixed by bijections only: the XOR with the
/// function's head fingerprint (keyed with the process's secret, so that
/// which streams share a set of the hot table cannot be predicted), a
/// multiplication by an odd constant modulo 2^128, and `x ^ (x >> 64)`,
/// which brings the product's high half, that depends on every byte, down
/// to the low bits the hot table's set index is taken from.
#[inline(always)]
pub(crate) fn raw_short(head: u128, stream: u128, len: usize) -> u128 {
    debug_assert!(len <= SHORT_RAW && stream >> (8 * len) == 0);
    let x = (stream | ((len as u128) << 120)) ^ head;
    let x = x.wrapping_mul(SHORT_MUL);
    x ^ (x >> 64)
}

// ----- stored key text -----------------------------------------------------

/// Bytes a stored key keeps as they are: printable ASCII but space and `#`.
#[inline]
fn is_clean(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'#'
}

/// Write `#` and the 192-bit digest of `text` as lowercase hex.
pub(crate) fn write_hash_tail(out: &mut impl Extend<u8>, text: &[u8]) {
    write_digest(out, b'#', text, DIGEST_BYTES);
}

/// Write `sep` and the first `bytes` bytes of BLAKE3 of `text` in hex.
fn write_digest(out: &mut impl Extend<u8>, sep: u8, text: &[u8], bytes: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = blake3::hash(text);
    out.extend(std::iter::once(sep));
    out.extend(
        digest.as_bytes()[..bytes]
            .iter()
            .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
    );
}

/// The stored text of a user-supplied key (see [`Key`]): the text itself
/// when it is short and clean, else its readable start, `#` and the digest
/// of all of it. Injective: a text with a `#` is never kept as it is, so a
/// hashed form is only ever the hash of the one text it was made from.
pub(crate) fn normalize(key: &str) -> Cow<'_, str> {
    let b = key.as_bytes();
    if b.len() <= MAX_KEY_LEN && b.iter().all(|&c| is_clean(c)) {
        return Cow::Borrowed(key);
    }
    let mut out: Vec<u8> = b[..b.len().min(KEEP)]
        .iter()
        .map(|&c| if is_clean(c) { c } else { b'_' })
        .collect();
    write_hash_tail(&mut out, b);
    Cow::Owned(String::from_utf8(out).expect("ASCII"))
}

/// Bytes of BLAKE3 that end a shortened name (see [`shorten`]).
const NAME_DIGEST_BYTES: usize = 16;
/// `sep` and that digest in hex.
pub(crate) const NAME_TAIL: usize = 1 + 2 * NAME_DIGEST_BYTES;

/// `text` if it has at most `max` bytes (at least [`NAME_TAIL`]), else its
/// start, `sep` and 128 bits of BLAKE3 of all of it in hex, `max` bytes in
/// all: the one way a long function name or cache prefix (which the
/// program chooses, not its callers) is shortened. `text` is ASCII.
pub(crate) fn shorten(text: &str, max: usize, sep: u8) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut out = text.as_bytes()[..max - NAME_TAIL].to_vec();
    write_digest(&mut out, sep, text.as_bytes(), NAME_DIGEST_BYTES);
    String::from_utf8(out).expect("ASCII")
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
    fn normal_forms_are_bounded_clean_and_injective() {
        let long = "z".repeat(300);
        let texts = ["plain", "with space", "hash#in", &long, "naïve", ""];
        let mut seen = std::collections::HashMap::new();
        for s in texts {
            let normal = normalize(s).into_owned();
            assert!(normal.len() <= MAX_KEY_LEN);
            assert!(normal.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            assert!(seen.insert(normal.clone(), s).is_none(), "{s}");
            // A hashed form given back is hashed again: it is not the key
            // of the text it was made from (no text can pose as another).
            if normal != s {
                assert_ne!(normalize(&normal), normal);
                assert!(
                    normal.len() == MAX_KEY_LEN || normal.len() == s.len().min(KEEP) + HASH_TAIL
                );
            }
        }
        assert_eq!(normalize("plain"), "plain");
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
        assert_eq!(fingerprint(b"plain"), fingerprint(b"plain"));
        assert_ne!(fingerprint(b"plain"), fingerprint(b"plain2"));
    }

    #[test]
    fn keys_keep_their_text_and_round_trip() {
        let long = format!("f:v1:{}", "x".repeat(400));
        for text in ["f:v1:1", "odd key", long.as_str(), "a#b"] {
            let key = Key::new(text);
            assert_eq!(key.as_str(), text);
            assert_eq!(Key::new(key.as_str()), key);
            assert_eq!(key.stored(), normalize(text));
        }
    }

    #[test]
    fn shortened_names_keep_their_start_and_length() {
        assert_eq!(shorten("short", 48, b'#'), "short");
        let long = "p".repeat(60);
        let s = shorten(&long, 48, b'.');
        assert_eq!(s.len(), 48);
        assert!(s.starts_with("ppp") && s.as_bytes()[48 - NAME_TAIL] == b'.');
        assert_ne!(s, shorten(&format!("{long}q"), 48, b'.'));
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
