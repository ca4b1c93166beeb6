//! The raw form of a memoized call's arguments: their serde calls, written
//! as tagged binary into a small buffer, for the local hit's fingerprint.
//!
//! A local hit looks its entry up by the hash of this stream instead of by
//! the key text's fingerprint, so it formats no integer, escapes no string
//! and hashes a few bytes. The stream records, with a tag for every serde
//! call, everything the key text writes: data (lengths before variable
//! data), variant names, and structure (a tag before every element or
//! field, an end tag after every compound). It can be read back, and the
//! key text written from what it reads: two arguments with one stream have
//! one key text. What the key text leaves out, the stream leaves out too:
//! struct, tuple-struct and field names and compound lengths (the text of
//! a struct is its field values in order). The converse does not hold,
//! and need not: `5u8` and `5u64` write the same text from different
//! streams, and reach the same entry through two hot entries.
//!
//! Lengths are written in one byte below 255, else as `0xFF` and eight
//! bytes: a prefix code (the first byte says how many follow), so the
//! stream stays readable; and a string of up to 13 bytes has a stream of at
//! most 15, which stays in a register (see [`RawSink`]).
//!
//! What the stream does not cover — maps (written sorted in the key text, so
//! their iteration order does not matter), a failing `Serialize`, a stream
//! longer than [`RAW_MAX`] — makes the call take the key text's path.

use std::mem::MaybeUninit;

use serde::ser::{self, Serialize};

use super::scheme::SHORT_RAW;

/// `dst.copy_from_slice(src)` for a buffer not yet written (MSRV 1.88 has
/// no `write_copy_of_slice`); the loop compiles to a copy.
#[inline(always)]
pub(super) fn write_bytes(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert_eq!(dst.len(), src.len());
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(s);
    }
}

/// The longest raw stream: a call whose arguments write more takes the key
/// text's path. Room for any argument of up to 200 bytes (a 200-byte string
/// writes 202, a small struct around one some 30 more).
pub(crate) const RAW_MAX: usize = 256;

// Data of 255 bytes or more cannot fit (a tag, a length byte and the
// data pass `RAW_MAX`): every length in a stream is one byte.
const _: () = assert!(RAW_MAX <= 256);

/// Where a raw stream is written: while it has at most [`SHORT_RAW`] bytes,
/// into `short` (little-endian, byte `i` at bits `8 i..`), a value the
/// compiler keeps in registers when the stream is written inline, as a
/// memoized call's arguments are; past that, into `buf` (the key builder's
/// own), which then holds the whole stream.
///
/// A short stream never goes through memory: its fingerprint (see
/// `raw_short`) is computed from the register. Written byte by byte into a
/// buffer and read back as one 16-byte word, it cost a store-forwarding
/// stall (a load that spans several smaller stores waits for them to reach
/// the cache) on every local hit.
pub(crate) struct RawSink<'a> {
    pub(crate) buf: &'a mut [MaybeUninit<u8>],
    pub(crate) len: usize,
    pub(crate) short: u128,
}

/// Why a call has no raw stream (it then takes the key text's path, which
/// reports the real error, if any): carries nothing, so that every step of
/// writing a stream returns a flag in a register.
#[derive(Debug)]
pub(crate) struct NoStream;

impl std::fmt::Display for NoStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no raw stream")
    }
}
impl std::error::Error for NoStream {}
impl ser::Error for NoStream {
    #[cold]
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NoStream
    }
}

/// `dst.copy_from_slice(src)` for a buffer not yet written, in 16-byte
/// moves (the last one overlapping) when there are 16 bytes or more: a
/// stream's data is rarely longer than a few dozen bytes, for which a call
/// to `memcpy` cost more than the copy.
#[inline(always)]
fn copy(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n);
    if n < 16 {
        return write_bytes(dst, src);
    }
    let word = |at: usize| u128::from_le_bytes(src[at..at + 16].try_into().expect("16 bytes"));
    let mut at = 0;
    while at + 16 <= n {
        store16(&mut dst[at..at + 16], word(at));
        at += 16;
    }
    if at < n {
        store16(&mut dst[n - 16..], word(n - 16));
    }
}

/// Write `word`'s 16 little-endian bytes into `dst` (16 bytes), as one store.
#[inline(always)]
fn store16(dst: &mut [MaybeUninit<u8>], word: u128) {
    assert_eq!(dst.len(), 16);
    // SAFETY: `dst` has 16 bytes, and `MaybeUninit<u8>` the layout of
    // `u8`: they may be written as one unaligned `[u8; 16]`.
    unsafe {
        dst.as_mut_ptr()
            .cast::<[u8; 16]>()
            .write_unaligned(word.to_le_bytes())
    };
}

/// The first (at most 16) bytes of `b` as a little-endian number, zero past
/// them: read with two overlapping loads of the source, never through a
/// buffer written a moment before (which would cost a store-forwarding
/// stall).
#[inline(always)]
fn load_le(b: &[u8]) -> u128 {
    let n = b.len();
    debug_assert!(n <= 16);
    if n >= 8 {
        let lo = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
        // `b[n - 8..]` ends with bytes `8..n`; the shift drops the others.
        let hi = u64::from_le_bytes(b[n - 8..n].try_into().expect("8 bytes"));
        u128::from(lo) | ((u128::from(hi) >> (8 * (16 - n))) << 64)
    } else if n >= 4 {
        let lo = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
        let hi = u32::from_le_bytes(b[n - 4..n].try_into().expect("4 bytes"));
        u128::from(lo) | ((u128::from(hi) >> (8 * (8 - n))) << 32)
    } else if n > 0 {
        // Bytes 0, n / 2 and n - 1 cover every byte of 1 to 3.
        u128::from(b[0])
            | (u128::from(b[n / 2]) << (8 * (n / 2)))
            | (u128::from(b[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

impl RawSink<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) -> Result<(), NoStream> {
        let (len, n) = (self.len, bytes.len());
        if len + n <= SHORT_RAW {
            // `8 * len` is at most 120: no overflowing shift.
            self.short |= load_le(bytes) << (8 * len);
            self.len = len + n;
            return Ok(());
        }
        self.put_long(bytes)
    }

    /// [`RawSink::put`] past [`SHORT_RAW`] bytes: the first time, the short
    /// stream moves into the buffer.
    #[inline(never)]
    fn put_long(&mut self, bytes: &[u8]) -> Result<(), NoStream> {
        let (len, n) = (self.len, bytes.len());
        if len <= SHORT_RAW {
            match self.buf.get_mut(..16) {
                Some(head) => store16(head, self.short),
                None => return Err(too_long()),
            }
        }
        match self.buf.get_mut(len..len + n) {
            Some(room) => {
                write_bytes(room, bytes);
                self.len = len + n;
                Ok(())
            }
            None => Err(too_long()),
        }
    }
    /// A tag, a length and data (a string's or bytes'): as `tag`, `len`
    /// and `put` would write them, with one test for the common cases (a
    /// short stream stays in the register; a long one takes one call).
    #[inline(always)]
    fn tagged_data(&mut self, tag: u8, bytes: &[u8]) -> Result<(), NoStream> {
        let (len, n) = (self.len, bytes.len());
        if len + 2 + n <= SHORT_RAW {
            // `n` is at most 13, so it is its own length byte, and the
            // three pieces fit the 15 bytes after the shift (at most 120).
            let word = u128::from(tag) | ((n as u128) << 8) | (load_le(bytes) << 16);
            self.short |= word << (8 * len);
            self.len = len + 2 + n;
            return Ok(());
        }
        self.tagged_data_long(tag, bytes)
    }

    /// [`RawSink::tagged_data`] past the register: the tag and the length
    /// byte join the short stream and move into the buffer with it (one
    /// 16-byte store), then the data follows.
    #[inline(never)]
    fn tagged_data_long(&mut self, tag: u8, bytes: &[u8]) -> Result<(), NoStream> {
        let (len, n) = (self.len, bytes.len());
        let end = len + 2 + n;
        // A length of 255 or more never fits (see `RAW_MAX`).
        let (Ok(n_byte), true) = (u8::try_from(n), end <= self.buf.len()) else {
            return Err(too_long());
        };
        if len < SHORT_RAW {
            // The register's bytes past `len` are zero: room for two more.
            let head = self.short | ((u128::from(tag) | (u128::from(n_byte) << 8)) << (8 * len));
            store16(&mut self.buf[..16], head);
        } else {
            if len == SHORT_RAW {
                store16(&mut self.buf[..16], self.short);
            }
            write_bytes(&mut self.buf[len..len + 2], &[tag, n_byte]);
        }
        copy(&mut self.buf[len + 2..end], bytes);
        self.len = end;
        Ok(())
    }

    #[inline(always)]
    fn tag(&mut self, tag: u8) -> Result<(), NoStream> {
        self.put(&[tag])
    }
    /// A tag, then `bytes` as one word.
    #[inline(always)]
    fn word<const N: usize>(&mut self, tag: u8, bytes: [u8; N]) -> Result<(), NoStream> {
        self.tag(tag)?;
        self.put(&bytes)
    }
}

#[cold]
fn too_long() -> NoStream {
    NoStream
}

/// Write `value`'s serde calls into `sink`.
#[inline(always)]
pub(crate) fn write<T: Serialize + ?Sized>(
    value: &T,
    sink: &mut RawSink<'_>,
) -> Result<(), NoStream> {
    value.serialize(Raw(sink))
}

// Tags: one per serde call (and per integer width: the stream need not
// merge what the key text merges).
const BOOL: u8 = 1;
const I8: u8 = 2;
const I16: u8 = 3;
const I32: u8 = 4;
const I64: u8 = 5;
const I128: u8 = 6;
const U8: u8 = 7;
const U16: u8 = 8;
const U32: u8 = 9;
const U64: u8 = 10;
const U128: u8 = 11;
const F32: u8 = 12;
const F64: u8 = 13;
const CHAR: u8 = 14;
const STR: u8 = 15;
const BYTES: u8 = 16;
const NONE: u8 = 17;
const SOME: u8 = 18;
const UNIT: u8 = 19;
const UNIT_STRUCT: u8 = 20;
const UNIT_VARIANT: u8 = 21;
const NEWTYPE_STRUCT: u8 = 22;
const NEWTYPE_VARIANT: u8 = 23;
const SEQ: u8 = 24;
const TUPLE: u8 = 25;
const TUPLE_STRUCT: u8 = 26;
const TUPLE_VARIANT: u8 = 27;
const STRUCT: u8 = 28;
const STRUCT_VARIANT: u8 = 29;
const ELEMENT: u8 = 30;
const FIELD: u8 = 31;
const SKIPPED: u8 = 32;
const END: u8 = 33;

struct Raw<'s, 'b>(&'s mut RawSink<'b>);

impl<'s, 'b> Raw<'s, 'b> {
    /// A variant: its name, which is what the key text writes of it.
    fn variant(self, tag: u8, variant: &str) -> Result<Self, NoStream> {
        self.0.tagged_data(tag, variant.as_bytes())?;
        Ok(self)
    }
}

impl<'s, 'b> ser::Serializer for Raw<'s, 'b> {
    type Ok = ();
    type Error = NoStream;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = ser::Impossible<(), NoStream>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), NoStream> {
        self.0.word(BOOL, [v as u8])
    }
    fn serialize_i8(self, v: i8) -> Result<(), NoStream> {
        self.0.word(I8, v.to_le_bytes())
    }
    fn serialize_i16(self, v: i16) -> Result<(), NoStream> {
        self.0.word(I16, v.to_le_bytes())
    }
    fn serialize_i32(self, v: i32) -> Result<(), NoStream> {
        self.0.word(I32, v.to_le_bytes())
    }
    #[inline(always)]
    fn serialize_i64(self, v: i64) -> Result<(), NoStream> {
        self.0.word(I64, v.to_le_bytes())
    }
    fn serialize_i128(self, v: i128) -> Result<(), NoStream> {
        self.0.word(I128, v.to_le_bytes())
    }
    fn serialize_u8(self, v: u8) -> Result<(), NoStream> {
        self.0.word(U8, v.to_le_bytes())
    }
    fn serialize_u16(self, v: u16) -> Result<(), NoStream> {
        self.0.word(U16, v.to_le_bytes())
    }
    fn serialize_u32(self, v: u32) -> Result<(), NoStream> {
        self.0.word(U32, v.to_le_bytes())
    }
    #[inline(always)]
    fn serialize_u64(self, v: u64) -> Result<(), NoStream> {
        self.0.word(U64, v.to_le_bytes())
    }
    fn serialize_u128(self, v: u128) -> Result<(), NoStream> {
        self.0.word(U128, v.to_le_bytes())
    }
    fn serialize_f32(self, v: f32) -> Result<(), NoStream> {
        self.0.word(F32, v.to_bits().to_le_bytes())
    }
    fn serialize_f64(self, v: f64) -> Result<(), NoStream> {
        self.0.word(F64, v.to_bits().to_le_bytes())
    }
    fn serialize_char(self, v: char) -> Result<(), NoStream> {
        self.0.word(CHAR, u32::from(v).to_le_bytes())
    }
    #[inline(always)]
    fn serialize_str(self, v: &str) -> Result<(), NoStream> {
        self.0.tagged_data(STR, v.as_bytes())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), NoStream> {
        self.0.tagged_data(BYTES, v)
    }
    fn serialize_none(self) -> Result<(), NoStream> {
        self.0.tag(NONE)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NoStream> {
        self.0.tag(SOME)?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), NoStream> {
        self.0.tag(UNIT)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), NoStream> {
        self.0.tag(UNIT_STRUCT)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), NoStream> {
        self.variant(UNIT_VARIANT, variant).map(drop)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), NoStream> {
        self.0.tag(NEWTYPE_STRUCT)?;
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), NoStream> {
        value.serialize(self.variant(NEWTYPE_VARIANT, variant)?)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, NoStream> {
        self.0.tag(SEQ)?;
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, NoStream> {
        self.0.tag(TUPLE)?;
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, NoStream> {
        self.0.tag(TUPLE_STRUCT)?;
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, NoStream> {
        self.variant(TUPLE_VARIANT, variant)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NoStream> {
        // The key text sorts a map's entries; the stream would follow the
        // iteration order. Such calls take the text's path.
        Err(ser::Error::custom("a map has no raw stream"))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, NoStream> {
        self.0.tag(STRUCT)?;
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, NoStream> {
        self.variant(STRUCT_VARIANT, variant)
    }
}

impl Raw<'_, '_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoStream> {
        self.0.tag(ELEMENT)?;
        value.serialize(Raw(self.0))
    }
    fn field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoStream> {
        self.0.tag(FIELD)?;
        value.serialize(Raw(self.0))
    }
    fn skip(&mut self) -> Result<(), NoStream> {
        self.0.tag(SKIPPED)
    }
    fn end(self) -> Result<(), NoStream> {
        self.0.tag(END)
    }
}

// The compound impls, as `writer`'s: one body for the four element-wise
// compounds and one for the two with named fields.
macro_rules! elements {
    ($($tr:ident :: $method:ident),*) => {$(
        impl ser::$tr for Raw<'_, '_> {
            type Ok = ();
            type Error = NoStream;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NoStream> {
                self.element(value)
            }
            fn end(self) -> Result<(), NoStream> {
                Raw::end(self)
            }
        }
    )*};
}
elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl ser::$tr for Raw<'_, '_> {
            type Ok = ();
            type Error = NoStream;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), NoStream> {
                self.field(value)
            }
            fn skip_field(&mut self, _key: &'static str) -> Result<(), NoStream> {
                self.skip()
            }
            fn end(self) -> Result<(), NoStream> {
                Raw::end(self)
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::super::KeyBuilder;

    /// The raw fingerprint and the key text of one argument.
    fn both<T: Serialize + ?Sized>(v: &T) -> (Option<u128>, String) {
        let mut kb = KeyBuilder::new("f:v1");
        kb.hashing();
        kb.part(v);
        let raw = kb.raw_fingerprint();
        kb.part(v);
        (raw, kb.into_key().unwrap().as_str().to_owned())
    }

    #[derive(Serialize)]
    struct S {
        a: u8,
        b: Option<String>,
    }
    #[derive(Serialize)]
    enum E {
        U,
        N(u8),
        T(u8, u8),
        S { x: u8 },
    }

    #[test]
    fn arguments_with_different_texts_have_different_streams() {
        let values: Vec<(Option<u128>, String)> = vec![
            both(&0u64),
            both(&1u64),
            both(&-1i64),
            both(&1.5f64),
            both("a"),
            both(""),
            both(&("a", "bc")),
            both(&("ab", "c")),
            both(&Option::<u8>::None),
            both(&Some(Option::<u8>::None)),
            both(&Some(Some(3u8))),
            both(&()),
            both(&[1u8, 2]),
            both(&vec![vec![1u8], vec![2]]),
            both(&vec![vec![1u8, 2]]),
            both(&S { a: 1, b: None }),
            both(&S {
                a: 1,
                b: Some("x".into()),
            }),
            both(&E::U),
            both(&E::N(1)),
            both(&E::T(1, 2)),
            both(&E::S { x: 1 }),
            both(&'a'),
            both(&true),
        ];
        for (i, (raw_i, text_i)) in values.iter().enumerate() {
            assert!(raw_i.is_some(), "{text_i} has a raw stream");
            for (raw_j, text_j) in &values[i + 1..] {
                assert_ne!(text_i, text_j);
                assert_ne!(raw_i, raw_j, "{text_i} and {text_j}");
            }
        }
    }

    #[test]
    fn what_has_no_stream_takes_the_text_path() {
        // A map (sorted in the text), a stream past the buffer.
        let map: BTreeMap<u8, u8> = [(1, 2)].into();
        assert_eq!(both(&map).0, None);
        assert_eq!(both("x".repeat(500).as_str()).0, None);
        // The text is what it was.
        assert_eq!(both(&map).1, "f:v1:{1=2}");
    }

    #[test]
    fn the_stream_depends_on_the_function_and_not_on_the_text() {
        let mut a = KeyBuilder::new("f:v1");
        a.hashing();
        a.part(&5u8);
        let mut b = KeyBuilder::new("f:v2");
        b.hashing();
        b.part(&5u8);
        let mut c = KeyBuilder::new("f:v1");
        c.hashing();
        c.part(&5u64);
        let (a, b, c) = (
            a.raw_fingerprint(),
            b.raw_fingerprint(),
            c.raw_fingerprint(),
        );
        assert_ne!(a, b);
        assert_ne!(a, c);
        // No raw fingerprint is the text's.
        let mut t = KeyBuilder::new("f:v1");
        t.part(&5u8);
        assert_ne!(Some(t.finish().unwrap()), a);
    }

    /// The raw fingerprint of one argument under the head `f:v1`.
    fn alias<T: Serialize + ?Sized>(v: &T) -> u128 {
        let mut kb = KeyBuilder::new("f:v1");
        kb.hashing();
        kb.part(v);
        kb.raw_fingerprint().expect("a raw stream")
    }

    /// Short streams (up to 15 bytes) get a packed, bijectively mixed
    /// fingerprint rather than a hash: over some million generated streams
    /// of every short length, and those just past it, no two collide.
    #[test]
    fn short_fingerprints_never_collide() {
        let mut seen = std::collections::HashMap::new();
        let mut add = |fp: u128, what: String| {
            // (A value generated twice is one argument, not a collision.)
            if let Some(first) = seen.insert(fp, what.clone()) {
                assert_eq!(first, what, "two arguments share the fingerprint {fp:032x}");
            }
        };
        // 2, 3, 5 and 9 bytes: every u8 and u16, spread u32 and u64.
        for v in 0..=u8::MAX {
            add(alias(&v), format!("{v}u8"));
        }
        for v in 0..=u16::MAX {
            add(alias(&v), format!("{v}u16"));
        }
        let mut x = 0x243F_6A88_85A3_08D3_u64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            add(alias(&(x as u32)), format!("{}u32", x as u32));
            add(alias(&x), format!("{x}u64"));
            add(alias(&i), format!("{i}u64"));
            // 6 and 10 bytes (`Some` and a word), 9 (another tag).
            add(alias(&Some(i as u32)), format!("Some({i}u32)"));
            add(alias(&Some(i)), format!("Some({i})"));
            add(alias(&(i as i64).wrapping_neg()), format!("-{i}i64"));
            // Tuples (a header word): 19 and 21 bytes, the hashed side.
            add(alias(&(i as u16, i >> 16)), format!("({i}, ..)"));
            add(alias(&(i as u32, x as u32)), format!("({i}u32, {x}u32)"));
        }
        // Strings of 0 to 8 bytes (streams of 9 to 17: both sides of 15).
        let strings: std::collections::BTreeSet<String> = (0..=8usize)
            .flat_map(|len| {
                (0..2_000usize).map(move |i| {
                    (0..len)
                        .map(|j| char::from(b'a' + ((i >> (j % 4 * 3)) % 26) as u8))
                        .collect()
                })
            })
            .collect();
        for s in &strings {
            add(alias(s.as_str()), format!("{s:?}"));
        }
        assert!(seen.len() > 1_000_000, "{}", seen.len());
    }

    /// What a longer stream or a key text left in the buffer before does
    /// not change a short stream's fingerprint.
    #[test]
    fn a_short_fingerprint_ignores_what_the_buffer_held() {
        let fresh = alias(&7u8);
        let mut kb = KeyBuilder::new("f:v1");
        kb.part("a long text argument, past sixteen bytes");
        kb.hashing();
        kb.part("a longer raw stream, also past sixteen bytes");
        assert!(kb.raw_fingerprint().is_some());
        kb.hashing();
        kb.part(&7u8);
        assert_eq!(kb.raw_fingerprint(), Some(fresh));
        // And the set index bits (the low ones) vary with every byte.
        let low: std::collections::HashSet<u64> = (0..64u64)
            .map(|i| alias(&(1u64 << i)) as u64 & 1023)
            .collect();
        assert!(low.len() > 48, "{}", low.len());
    }

    /// A stream is kept in a register while it has at most 15 bytes and
    /// moves into the buffer when a write would pass that, whichever write
    /// it is (a tag, a length, data, at any offset): the fingerprint is
    /// always that of every byte of the stream, in order.
    #[test]
    fn a_stream_that_grows_past_the_register_keeps_every_byte() {
        use super::super::scheme::{head_fingerprint, raw_combine, raw_short};
        use super::{SHORT_RAW, STR, U64, U8};
        let head_fp = head_fingerprint(b"f:v1");
        let expected = |stream: &[u8]| {
            if stream.len() <= SHORT_RAW {
                let mut word = [0u8; 16];
                word[..stream.len()].copy_from_slice(stream);
                raw_short(head_fp, u128::from_le_bytes(word), stream.len())
            } else {
                raw_combine(head_fp, stream)
            }
        };
        let text = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for a in 0..=20 {
            for b in 0..=20 {
                for small in [false, true] {
                    // Parts: a string of `a` bytes, a u8 or a u64, a
                    // string of `b` bytes (2 + a, 2 or 9, 2 + b bytes).
                    let (s1, s2) = (&text[..a], &text[text.len() - b..]);
                    let mut stream = vec![STR, a as u8];
                    stream.extend(s1.as_bytes());
                    let mut kb = KeyBuilder::new("f:v1");
                    kb.hashing();
                    kb.part(s1);
                    if small {
                        stream.extend([U8, 0xA5]);
                        kb.part(&0xA5u8);
                    } else {
                        stream.push(U64);
                        stream.extend(0x0102_0304_0506_0708_u64.to_le_bytes());
                        kb.part(&0x0102_0304_0506_0708_u64);
                    }
                    stream.extend([STR, b as u8]);
                    stream.extend(s2.as_bytes());
                    kb.part(s2);
                    assert_eq!(
                        kb.raw_fingerprint(),
                        Some(expected(&stream)),
                        "a = {a}, b = {b}, u8: {small}"
                    );
                    if stream.len() > SHORT_RAW {
                        assert_eq!(kb.raw_stream(), &stream[..], "a = {a}, b = {b}");
                    }
                    // Each prefix too (streams of 2 to 22 bytes).
                    let mut kb = KeyBuilder::new("f:v1");
                    kb.hashing();
                    kb.part(s1);
                    assert_eq!(kb.raw_fingerprint(), Some(expected(&stream[..2 + a])));
                }
            }
        }
    }

    /// The raw buffer holds any argument of up to 200 bytes, and streams
    /// up to [`RAW_MAX`](super::RAW_MAX) bytes exactly: a string of 254
    /// bytes (a tag, a length byte and the data: 256) has a stream, one of
    /// 255 has none (its length would not fit a byte, nor it the buffer),
    /// and neither has a stream that a last byte takes past the buffer.
    #[test]
    fn the_raw_buffer_holds_streams_up_to_its_size() {
        use super::RAW_MAX;
        let raw = |build: &dyn Fn(&mut KeyBuilder)| {
            let mut kb = KeyBuilder::new("f:v1");
            kb.hashing();
            build(&mut kb);
            kb.raw_fingerprint().map(|_| kb.raw_stream().len())
        };
        let s200 = "q".repeat(200);
        assert_eq!(raw(&|kb| kb.part(s200.as_str())), Some(202));
        assert_eq!(raw(&|kb| kb.part(&s200)), Some(202));
        let s254 = "q".repeat(254);
        assert_eq!(raw(&|kb| kb.part(s254.as_str())), Some(RAW_MAX));
        let s255 = "q".repeat(255);
        assert_eq!(raw(&|kb| kb.part(s255.as_str())), None);
        // 2 + 252 bytes, then a u8 (2 more): exactly full; one more byte
        // of string, and the u8 does not fit.
        let s252 = "q".repeat(252);
        assert_eq!(
            raw(&|kb| {
                kb.part(s252.as_str());
                kb.part(&7u8);
            }),
            Some(RAW_MAX)
        );
        let s253 = "q".repeat(253);
        assert_eq!(
            raw(&|kb| {
                kb.part(s253.as_str());
                kb.part(&7u8);
            }),
            None
        );
        // Past the buffer the call takes the text's path, with its key.
        let (raw_fp, text) = both(s255.as_str());
        assert_eq!(raw_fp, None);
        assert_eq!(text, format!("f:v1:{s255}"));
    }

    /// A length is one byte, so where one string ends and the next begins
    /// is in the stream: moving bytes from one string to the next changes
    /// the stream, for every split of the same bytes and every length up to
    /// the buffer, even when the data holds the bytes of a string's tag and
    /// length (without the length, `"a" + "\x0f\x00b"` and `"a\x0f\x00" +
    /// "b"` would write one stream).
    #[test]
    fn lengths_keep_the_boundaries_of_data() {
        let data = "a\u{f}\u{0}b".repeat(63);
        let mut seen = std::collections::HashMap::new();
        for total in [0, 1, 4, 11, 13, 14, 15, 16, 120, 127, 128, 129, 200, 250] {
            for cut in 0..=total {
                let (x, y) = (&data[..cut], &data[cut..total]);
                let mut kb = KeyBuilder::new("f:v1");
                kb.hashing();
                kb.part(x);
                kb.part(y);
                let Some(fp) = kb.raw_fingerprint() else {
                    panic!("{total} bytes in two strings have a stream");
                };
                // A short stream is told apart by its (injective)
                // fingerprint, a long one by the stream a hit compares.
                let stream = match kb.raw_stream() {
                    [] => fp.to_le_bytes().to_vec(),
                    long => long.to_vec(),
                };
                if let Some(other) = seen.insert(stream, (cut, total)) {
                    panic!("({cut}, {total}) and {other:?} share a stream");
                }
                // The same stream always gets the same fingerprint.
                let mut again = KeyBuilder::new("f:v1");
                again.hashing();
                again.part(x);
                again.part(y);
                assert_eq!(again.raw_fingerprint(), Some(fp));
            }
        }
    }

    /// A builder asked for its key while it writes raw streams (a misuse
    /// of the hidden builder API, never the macro's sequence) gets an
    /// error, not a key read from a buffer the short stream never reached.
    #[test]
    fn no_key_while_hashing() {
        let mut kb = KeyBuilder::new("f:v1");
        kb.part("");
        kb.hashing();
        kb.part(&1u64);
        assert!(kb.into_key().is_err());
        // Text parts written before `hashing` are dropped with the text.
        let mut kb = KeyBuilder::new("f:v1");
        kb.part("a");
        kb.hashing();
        kb.part(&1u64);
        assert!(kb.raw_fingerprint().is_some());
        kb.part(&1u64);
        assert_eq!(kb.into_key().unwrap().as_str(), "f:v1:1");
    }
}
