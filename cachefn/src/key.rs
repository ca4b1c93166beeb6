//! Cache keys: built from arguments without allocating, readable when short,
//! injective, at most [`MAX_KEY_LEN`] bytes, stable across processes.
//!
//! # The key text
//!
//! A memoized function's key is `name:vVERSION:ARG:ARG...`, for example
//! `blog.views.profile:v1:1001`. The cache prefixes it with its own
//! namespace when it stores it (`blog:blog.views.profile:v1:1001`).
//!
//! Each argument is written by a small serde serializer:
//!
//! | value | text |
//! |---|---|
//! | integers, floats, `bool` | decimal, `true` / `false` |
//! | strings, chars, bytes | `[A-Za-z0-9_.-]` as is, every other byte `%XX`; the empty string is `""` |
//! | `None` / `Some(x)` | `~` / the text of `x` (`+` marks a `Some` of an `Option`) |
//! | sequences, maps | `[a,b]`, `{k=v,k=v}` (map entries sorted, so `HashMap` order does not matter) |
//! | tuples, structs | `(a,b)` (newtype structs are transparent) |
//! | enum variants | `Name`, `Name(a,b)` |
//!
//! Every structural character is escaped inside strings, so the text can be
//! parsed back for a given type: two different argument tuples never share a
//! key. Only printable ASCII without spaces appears, as memcached requires.
//! A text longer than [`MAX_KEY_LEN`] keeps its first bytes for readability
//! and ends in `#` and the 128-bit XXH3 hash of the whole text (`#` appears
//! nowhere else). Use `BTreeSet` rather than `HashSet` in keys: serde cannot
//! tell a set from a sequence, and a `HashSet` iterates in a random order.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Serialize};
use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed, Xxh3};

use crate::Error;

/// The longest key text, before the cache's prefix is added. Prefixes are
/// kept to 48 bytes, so a stored key fits the 250 bytes memcached allows.
pub const MAX_KEY_LEN: usize = 200;
const HASH_TAIL: usize = 33; // '#' and 32 hex digits
const KEEP: usize = MAX_KEY_LEN - HASH_TAIL;

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
fn split_head(text: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
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

#[inline]
fn combine(head: u128, rest: Option<&[u8]>) -> u128 {
    let rest = match rest {
        Some(r) => xxh3_128_with_seed(r, REST_SEED),
        None => NO_REST,
    };
    head ^ rest.rotate_left(1)
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

fn write_hash_tail(out: &mut impl Extend<u8>, hash: u128) {
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

#[inline]
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Write a string argument. Besides escaping every byte outside
/// `[A-Za-z0-9_.-]`, a string whose first byte is not a letter or `_`, and
/// the words `true`, `false`, `inf`, `nan…`, get their first byte escaped
/// too: a string then never reads like a number, a bool, a float or a
/// marker, so values of an untagged enum (`5` and `"5"`) stay apart.
fn escape_arg<S: Sink + ?Sized>(bytes: &[u8], out: &mut S) {
    let plain_start = bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && !matches!(bytes, b"true" | b"false" | b"inf")
        && !bytes.starts_with(b"nan");
    if plain_start || bytes.is_empty() {
        return escape_into(bytes, out);
    }
    let b = bytes[0];
    out.push(&[
        b'%',
        HEX_UPPER[(b >> 4) as usize],
        HEX_UPPER[(b & 0xf) as usize],
    ]);
    if bytes.len() > 1 {
        escape_into(&bytes[1..], out);
    }
}

fn escape_into<S: Sink + ?Sized>(bytes: &[u8], out: &mut S) {
    const HEX: &[u8; 16] = HEX_UPPER;
    if bytes.is_empty() {
        out.push(b"\"\"");
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !is_safe(b) {
            out.push(&bytes[start..i]);
            out.push(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
            start = i + 1;
        }
    }
    out.push(&bytes[start..]);
}

/// Where key text goes.
pub(crate) trait Sink {
    fn push(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn push(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Builds a key on the stack: the arguments go into a fixed buffer after a
/// `name:vN` head that is never copied on the hit path. Text past
/// [`MAX_KEY_LEN`] streams into a hasher instead, so building never allocates.
#[doc(hidden)]
pub struct KeyBuilder {
    head: &'static str,
    head_fp: u128,
    /// The arguments, `:`-separated (the `:` after the head is implied).
    buf: [u8; MAX_KEY_LEN],
    len: usize,
    /// Room for arguments before the whole text would pass [`MAX_KEY_LEN`].
    room: usize,
    parts: u32,
    /// Boxed: only keys longer than the buffer need it, and the builder
    /// stays small enough to build on the stack cheaply.
    overflow: Option<Box<Xxh3>>,
    error: Option<String>,
}

impl Sink for KeyBuilder {
    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        let (len, n) = (self.len, bytes.len());
        if self.overflow.is_none() && len + n <= self.room {
            // Most pushes are a separator or a short number: avoid a memcpy call.
            if n == 1 {
                self.buf[len] = bytes[0];
            } else {
                self.buf[len..len + n].copy_from_slice(bytes);
            }
            self.len = len + n;
        } else {
            self.push_long(bytes);
        }
    }
}

impl KeyBuilder {
    /// A key that starts with `head` (`name:vN`).
    pub fn new(head: &'static str) -> Self {
        Self::with_head(head, head_fingerprint(head.as_bytes()))
    }

    /// As [`KeyBuilder::new`], with the head's fingerprint computed already.
    #[inline(always)]
    pub(crate) fn with_head(head: &'static str, head_fp: u128) -> Self {
        KeyBuilder {
            head,
            head_fp,
            buf: [0; MAX_KEY_LEN],
            len: 0,
            room: MAX_KEY_LEN.saturating_sub(head.len() + 1),
            parts: 0,
            overflow: None,
            error: None,
        }
    }

    #[cold]
    #[inline(never)]
    fn push_long(&mut self, bytes: &[u8]) {
        if let Some(h) = &mut self.overflow {
            h.update(bytes);
            return;
        }
        let mut h = Box::new(Xxh3::new());
        h.update(self.head.as_bytes());
        h.update(b":");
        h.update(&self.buf[..self.len]);
        h.update(bytes);
        // Keep the readable start of the text in the buffer.
        let fits = self.room - self.len;
        self.buf[self.len..self.room].copy_from_slice(&bytes[..fits]);
        self.len = self.room;
        self.overflow = Some(h);
    }

    /// Append one argument.
    #[inline]
    pub fn part<T: crate::KeyPart + ?Sized>(&mut self, value: &T) {
        if self.parts > 0 {
            self.push(b":");
        }
        self.parts += 1;
        let mut ser = KeySerializer {
            out: self,
            some_pending: false,
        };
        if let Err(e) = value.serialize(&mut ser) {
            self.error.get_or_insert(e.0);
        }
    }

    /// Finish the key and return its fingerprint; [`KeyBuilder::text`] then
    /// gives the text, for the paths that need it.
    #[inline]
    pub(crate) fn finish(&mut self) -> Result<u128, Error> {
        if let Some(e) = &self.error {
            return Err(Error::Key(e.clone()));
        }
        if self.parts == 0 {
            return Ok(combine(self.head_fp, None));
        }
        if let Some(h) = self.overflow.take() {
            // Keep the start of the arguments, then `#` and the hash of the whole text.
            let keep = KEEP.saturating_sub(self.head.len() + 1).min(self.len);
            let mut tail = Vec::with_capacity(HASH_TAIL);
            write_hash_tail(&mut tail, h.digest128());
            self.buf[keep..keep + HASH_TAIL].copy_from_slice(&tail);
            self.len = keep + HASH_TAIL;
            self.room = self.len;
        }
        Ok(combine(self.head_fp, Some(&self.buf[..self.len])))
    }

    /// The finished key text (after [`KeyBuilder::finish`]).
    pub(crate) fn text(&self) -> Result<String, Error> {
        let args = key_text(&self.buf[..self.len])?;
        let mut text = String::with_capacity(self.head.len() + 1 + args.len());
        text.push_str(self.head);
        if self.parts > 0 {
            text.push(':');
            text.push_str(args);
        }
        Ok(text)
    }

    /// The finished key as an owned [`Key`].
    pub fn into_key(mut self) -> Result<Key, Error> {
        let fp = self.finish()?;
        Ok(Key::from_parts(&self.text()?, fp))
    }
}

/// Key bytes as text. Builders only ever write ASCII (names and arguments
/// are escaped), so this fails only on a bug, as a key error.
pub(crate) fn key_text(bytes: &[u8]) -> Result<&str, Error> {
    std::str::from_utf8(bytes).map_err(|e| Error::Key(e.to_string()))
}

#[derive(Debug)]
pub(crate) struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for KeyError {}
impl ser::Error for KeyError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

struct KeySerializer<'a, S: Sink + ?Sized> {
    out: &'a mut S,
    /// Set while serializing the inside of a `Some`, so that a nested
    /// `Option` marks itself with `+` and `Some(None)` differs from `None`.
    some_pending: bool,
}

impl<S: Sink + ?Sized> KeySerializer<'_, S> {
    #[inline]
    fn take_pending(&mut self) -> bool {
        std::mem::take(&mut self.some_pending)
    }
    #[inline]
    fn raw(&mut self, bytes: &[u8]) -> Result<(), KeyError> {
        self.some_pending = false;
        self.out.push(bytes);
        Ok(())
    }
    fn int(&mut self, v: impl itoa::Integer) -> Result<(), KeyError> {
        let mut b = itoa::Buffer::new();
        self.raw(b.format(v).as_bytes())
    }
    fn text(&mut self, bytes: &[u8]) -> Result<(), KeyError> {
        self.some_pending = false;
        escape_arg(bytes, self.out);
        Ok(())
    }
    fn float(&mut self, v: f64, bits: u64) -> Result<(), KeyError> {
        if v.is_nan() {
            let mut b = itoa::Buffer::new();
            self.raw(b"nan")?;
            return self.raw(b.format(bits).as_bytes());
        }
        let mut s = String::new();
        fmt::Write::write_fmt(&mut s, format_args!("{v}")).map_err(ser::Error::custom)?;
        // Always look like a float (`5.0`, not `5`), so it never reads as an integer.
        if !s.contains(['.', 'e', 'i']) {
            s.push_str(".0");
        }
        self.raw(s.as_bytes())
    }
    fn open(&mut self, bytes: &[u8]) -> Result<Compound<'_, S>, KeyError> {
        self.raw(bytes)?;
        Ok(Compound {
            ser: KeySerializer {
                out: self.out,
                some_pending: false,
            },
            first: true,
            close: b")",
            entries: None,
        })
    }
}

pub(crate) struct Compound<'a, S: Sink + ?Sized> {
    ser: KeySerializer<'a, S>,
    first: bool,
    close: &'static [u8],
    /// Map entries, written sorted at the end so that iteration order does
    /// not change the key.
    entries: Option<Vec<Vec<u8>>>,
}

impl<S: Sink + ?Sized> Compound<'_, S> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        if !std::mem::take(&mut self.first) {
            self.ser.out.push(b",");
        }
        self.ser.some_pending = false;
        value.serialize(&mut self.ser)
    }
    fn skipped(&mut self) -> Result<(), KeyError> {
        if !std::mem::take(&mut self.first) {
            self.ser.out.push(b",");
        }
        self.ser.out.push(b"!");
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        if let Some(mut entries) = self.entries {
            entries.sort_unstable();
            for (i, e) in entries.iter().enumerate() {
                if i > 0 {
                    self.ser.out.push(b",");
                }
                self.ser.out.push(e);
            }
        }
        self.ser.out.push(self.close);
        Ok(())
    }
}

impl<'a, S: Sink + ?Sized> ser::Serializer for &'a mut KeySerializer<'_, S> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Compound<'a, S>;
    type SerializeTuple = Compound<'a, S>;
    type SerializeTupleStruct = Compound<'a, S>;
    type SerializeTupleVariant = Compound<'a, S>;
    type SerializeMap = Compound<'a, S>;
    type SerializeStruct = Compound<'a, S>;
    type SerializeStructVariant = Compound<'a, S>;

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.raw(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.int(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.float(v as f64, v.to_bits() as u64)
    }
    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.float(v, v.to_bits())
    }
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.text(v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.text(v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.text(v)
    }
    fn serialize_none(self) -> Result<(), KeyError> {
        if self.take_pending() {
            self.out.push(b"+");
        }
        self.raw(b"~")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        if self.take_pending() {
            self.out.push(b"+");
        }
        self.some_pending = true;
        let r = value.serialize(&mut *self);
        self.some_pending = false;
        r
    }
    fn serialize_unit(self) -> Result<(), KeyError> {
        self.raw(b"-")
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), KeyError> {
        self.raw(b"-")
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.text(variant.as_bytes())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.some_pending = false;
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.text(variant.as_bytes())?;
        let mut c = self.open(b"(")?;
        c.element(value)?;
        c.end()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, KeyError> {
        let mut c = self.open(b"[")?;
        c.close = b"]";
        Ok(c)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, KeyError> {
        self.open(b"(")
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, KeyError> {
        self.open(b"(")
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, KeyError> {
        self.text(variant.as_bytes())?;
        self.open(b"(")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, KeyError> {
        let mut c = self.open(b"{")?;
        c.close = b"}";
        c.entries = Some(Vec::new());
        Ok(c)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, KeyError> {
        self.open(b"(")
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, KeyError> {
        self.text(variant.as_bytes())?;
        self.open(b"(")
    }
}

macro_rules! compound {
    ($($tr:ident :: $method:ident),*) => {$(
        impl<S: Sink + ?Sized> ser::$tr for Compound<'_, S> {
            type Ok = ();
            type Error = KeyError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
                self.element(value)
            }
            fn end(self) -> Result<(), KeyError> {
                Compound::end(self)
            }
        }
    )*};
}
compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl<S: Sink + ?Sized> ser::SerializeStruct for Compound<'_, S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }
    /// A field left out by `skip_serializing_if` still takes its place, as
    /// `!`, so that fields keep their positions.
    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skipped()
    }
    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl<S: Sink + ?Sized> ser::SerializeStructVariant for Compound<'_, S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.element(value)
    }
    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        self.skipped()
    }
    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

impl<S: Sink + ?Sized> ser::SerializeMap for Compound<'_, S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        let mut entry = Vec::new();
        key.serialize(&mut KeySerializer {
            out: &mut entry,
            some_pending: false,
        })?;
        entry.push(b'=');
        self.entries.get_or_insert_with(Vec::new).push(entry);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let entries = self.entries.get_or_insert_with(Vec::new);
        let Some(entry) = entries.last_mut() else {
            return Err(ser::Error::custom("map value without a key"));
        };
        value.serialize(&mut KeySerializer {
            out: entry,
            some_pending: false,
        })
    }
    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn key_of<T: Serialize + ?Sized>(v: &T) -> String {
        let mut kb = KeyBuilder::new("f:v1");
        kb.part(v);
        kb.into_key().unwrap().as_str().to_owned()
    }

    #[test]
    fn readable_when_short() {
        assert_eq!(key_of(&1001u64), "f:v1:1001");
        assert_eq!(key_of("alice"), "f:v1:alice");
        assert_eq!(key_of("a b:c"), "f:v1:a%20b%3Ac");
        assert_eq!(key_of(""), "f:v1:\"\"");
        assert_eq!(key_of(&Some(5u8)), "f:v1:5");
        assert_eq!(key_of(&None::<u8>), "f:v1:~");
        assert_eq!(key_of(&Some(None::<u8>)), "f:v1:+~");
        assert_eq!(key_of(&vec![1, 2]), "f:v1:[1,2]");
        assert_eq!(key_of(&(1, "x")), "f:v1:(1,x)");
        assert_eq!(key_of(&-1.5f64), "f:v1:-1.5");
        assert_eq!(key_of(&5.0f64), "f:v1:5.0");
        assert_eq!(key_of("5"), "f:v1:%35");
        assert_eq!(key_of("true"), "f:v1:%74rue");
    }

    #[test]
    fn skipped_fields_and_untagged_enums_stay_apart() {
        #[derive(serde::Serialize)]
        struct Q {
            #[serde(skip_serializing_if = "Option::is_none")]
            author: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            tag: Option<String>,
        }
        let a = key_of(&Q {
            author: Some("rust".into()),
            tag: None,
        });
        let b = key_of(&Q {
            author: None,
            tag: Some("rust".into()),
        });
        assert_ne!(a, b);
        assert_eq!(a, "f:v1:(rust,!)");

        #[derive(serde::Serialize)]
        #[serde(untagged)]
        enum Id {
            Num(u32),
            Float(f64),
            Name(String),
            Flag(bool),
        }
        let keys: std::collections::HashSet<String> = [
            key_of(&Id::Num(5)),
            key_of(&Id::Float(5.0)),
            key_of(&Id::Name("5".into())),
            key_of(&Id::Name("5.0".into())),
            key_of(&Id::Flag(true)),
            key_of(&Id::Name("true".into())),
        ]
        .into();
        assert_eq!(keys.len(), 6, "{keys:?}");
    }

    #[test]
    fn nested_options_and_empties_differ() {
        let keys = [
            key_of(&Vec::<String>::new()),
            key_of(&vec![String::new()]),
            key_of(&vec![String::new(), String::new()]),
        ];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[1], keys[2]);
        assert_ne!(
            key_of(&Some(vec![None::<u8>])),
            key_of(&Some(vec![Some(0u8)]))
        );
    }

    #[test]
    fn maps_are_order_independent() {
        let a: BTreeMap<_, _> = [(2, "b"), (1, "a")].into_iter().collect();
        let b: std::collections::HashMap<_, _> = [(1, "a"), (2, "b")].into_iter().collect();
        assert_eq!(key_of(&a), key_of(&b));
        assert_eq!(key_of(&a), "f:v1:{1=a,2=b}");
    }

    #[test]
    fn long_keys_are_hashed_and_bounded() {
        let long = "x".repeat(500);
        let k = key_of(long.as_str());
        assert_eq!(k.len(), MAX_KEY_LEN);
        assert!(k.starts_with("f:v1:xxxx"));
        assert_eq!(k.matches('#').count(), 1);
        let mut other = long.clone();
        other.push('y');
        assert_ne!(k, key_of(other.as_str()));
        // A finished key is already in normal form.
        assert_eq!(normalize(&k), k);
    }

    #[test]
    fn builder_fingerprint_is_a_function_of_the_text() {
        let long = "z".repeat(400);
        type Build = Box<dyn Fn(&mut KeyBuilder)>;
        let cases: Vec<Build> = vec![
            Box::new(|_| {}),
            Box::new(|kb| kb.part(&42u64)),
            Box::new(|kb| kb.part("")),
            Box::new(|kb| {
                kb.part(&1u8);
                kb.part("a:b");
            }),
            Box::new(move |kb| kb.part(long.as_str())),
        ];
        let mut seen = std::collections::HashSet::new();
        for build in &cases {
            let mut kb = KeyBuilder::new("app.f:v3");
            build(&mut kb);
            let key = kb.into_key().unwrap();
            assert_eq!(
                Key::new(key.as_str()).fingerprint(),
                key.fingerprint(),
                "{key}"
            );
            assert_eq!(fingerprint(key.as_str().as_bytes()), key.fingerprint());
            assert!(seen.insert(key.fingerprint()));
        }
        // `name:vN` and `name:vN:` are different keys.
        assert_ne!(
            Key::new("a:v1").fingerprint(),
            Key::new("a:v1:").fingerprint()
        );
        assert_ne!(
            Key::new("a:v1").fingerprint(),
            Key::new("a:v2").fingerprint()
        );
    }

    #[test]
    fn normalize_is_idempotent() {
        for s in ["plain", "with space", "hash#in", &"z".repeat(300), "naïve"] {
            let once = normalize(s).into_owned();
            assert!(once.len() <= MAX_KEY_LEN);
            assert_eq!(normalize(&once), once, "{s}");
            assert!(once.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        }
    }
}
