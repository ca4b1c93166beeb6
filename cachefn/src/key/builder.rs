//! [`KeyBuilder`]: a memoized call's key, built on the stack.

use std::mem::MaybeUninit;

use super::raw::{self, write_bytes, RawSink, RAW_MAX};
use super::scheme::{
    combine, head_fingerprint, key_text, raw_combine, raw_short, write_hash_tail, Key, Sink,
    HASH_TAIL, KEEP, MAX_KEY_LEN, SHORT_RAW,
};
use super::writer;
use crate::Error;

/// Builds a key on the stack: the arguments go into a fixed buffer after a
/// `name:vN` head that is never copied on the hit path. A text that grows
/// past [`MAX_KEY_LEN`] is kept whole on the heap (a long key's digest
/// covers all of it, and `f::key` returns all of it).
///
/// The finished text is `head:ARG:ARG...`, each argument written by the key
/// writer (see the [module docs](super)); a text longer than [`MAX_KEY_LEN`]
/// is stored as exactly what [`Key::new`] makes of the whole text: its first
/// bytes, `#` and 192 bits of BLAKE3 of all of it.
///
/// Before the text, the wrapper of a memoized call writes the arguments'
/// raw stream ([`KeyBuilder::hashing`]) into a buffer of its own, which a
/// thread's hot entries are looked up by and compared with.
#[doc(hidden)]
pub struct KeyBuilder {
    head: &'static str,
    head_fp: u128,
    /// The arguments, `:`-separated (the `:` after the head is implied).
    buf: Buf<MAX_KEY_LEN>,
    len: usize,
    /// Room for arguments before the whole text would pass [`MAX_KEY_LEN`].
    room: usize,
    parts: u32,
    /// The whole text (head, `:`, arguments) once it outgrew the buffer,
    /// which then keeps only its start (and, once finished, the digest).
    whole: Option<Vec<u8>>,
    error: Option<String>,
    /// The arguments' raw stream (see [`raw`](super::raw)), when it has
    /// more than [`SHORT_RAW`] bytes; `raw_len` bytes of it are written.
    raw: Buf<RAW_MAX>,
    raw_len: usize,
    /// `false` once a part has no raw stream.
    raw_ok: bool,
    /// A raw stream of at most [`SHORT_RAW`] bytes (see [`RawSink`]).
    short: u128,
    /// [`KeyBuilder::part`] writes raw streams (see [`KeyBuilder::hashing`]).
    hashing: bool,
}

/// A key builder's buffer, not zeroed: a hit writes a few bytes of it,
/// and zeroing all of it cost more than the rest of building the key.
/// Invariant (kept by [`KeyBuilder`]): the text buffer's first `len`
/// bytes are written; the raw buffer's first `raw_len` bytes are written
/// once the stream has outgrown the register that holds a short one.
struct Buf<const N: usize>([MaybeUninit<u8>; N]);

impl<const N: usize> Buf<N> {
    #[inline(always)]
    fn new() -> Buf<N> {
        // SAFETY: an array of `MaybeUninit` needs no initialization (the
        // idiom of `MaybeUninit`'s docs; `[MaybeUninit::uninit(); N]` may
        // compile to a memset of the whole buffer).
        Buf(unsafe { MaybeUninit::<[MaybeUninit<u8>; N]>::uninit().assume_init() })
    }

    /// The first `len` bytes, all written.
    #[inline(always)]
    fn filled(&self, len: usize) -> &[u8] {
        let written = &self.0[..len];
        // SAFETY: the builder writes its buffers from the start with no gap
        // and never reads past what it wrote (`len`, `raw_len`);
        // `MaybeUninit<u8>` has the layout of `u8`.
        unsafe { &*(written as *const [MaybeUninit<u8>] as *const [u8]) }
    }
}

impl Sink for KeyBuilder {
    #[inline(always)]
    fn push(&mut self, bytes: &[u8]) {
        let (len, n) = (self.len, bytes.len());
        if self.whole.is_none() && len + n <= self.room {
            // Most pushes are a separator or a short number: avoid a memcpy call.
            if n == 1 {
                self.buf.0[len].write(bytes[0]);
            } else {
                write_bytes(&mut self.buf.0[len..len + n], bytes);
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
            buf: Buf::new(),
            len: 0,
            room: MAX_KEY_LEN.saturating_sub(head.len() + 1),
            parts: 0,
            whole: None,
            error: None,
            raw: Buf::new(),
            raw_len: 0,
            raw_ok: true,
            short: 0,
            hashing: false,
        }
    }

    #[cold]
    #[inline(never)]
    fn push_long(&mut self, bytes: &[u8]) {
        if let Some(whole) = &mut self.whole {
            whole.extend_from_slice(bytes);
            return;
        }
        let mut whole = Vec::with_capacity(2 * MAX_KEY_LEN + bytes.len());
        whole.extend_from_slice(self.head.as_bytes());
        whole.push(b':');
        whole.extend_from_slice(self.buf.filled(self.len));
        whole.extend_from_slice(bytes);
        // Keep the readable start of the text in the buffer.
        let fits = self.room - self.len;
        write_bytes(&mut self.buf.0[self.len..self.room], &bytes[..fits]);
        self.len = self.room;
        self.whole = Some(whole);
    }

    /// Append one argument.
    #[inline(always)]
    pub fn part<T: crate::KeyPart + ?Sized>(&mut self, value: &T) {
        if self.hashing {
            self.hash_part(value);
        } else {
            self.text_part(value);
        }
    }

    #[inline]
    fn text_part<T: crate::KeyPart + ?Sized>(&mut self, value: &T) {
        if self.parts > 0 {
            self.push(b":");
        }
        self.parts += 1;
        if let Err(e) = writer::write(value, self) {
            self.error.get_or_insert(e.to_string());
        }
    }

    /// Append one value given for the `vary_on` path `path` (by `f::clear_by`
    /// and its siblings), checked against the type `field` projects it from
    /// in the memoized call: a value of another kind (a string for a
    /// number) is a key error rather than a key that misses.
    pub fn part_of<V, A, R, F>(&mut self, value: &V, path: &'static str, field: F)
    where
        V: crate::KeyPart + ?Sized,
        A: ?Sized,
        R: ?Sized,
        F: Fn(&A) -> &R,
    {
        let _ = field;
        let (expected, given) = (std::any::type_name::<R>(), std::any::type_name::<V>());
        if let Some(e) = super::kind::mismatch(path, expected, given) {
            self.error.get_or_insert(e);
        }
        self.part(value);
    }

    /// From now until [`KeyBuilder::raw_fingerprint`], [`KeyBuilder::part`]
    /// writes each argument's raw stream, which a local hit is looked up
    /// by; the key text is written (by the same calls, again) only when
    /// that misses. One method for both, so that an argument that cannot
    /// be part of a key is one error, not two.
    ///
    /// Called on a fresh builder: text parts written before are dropped.
    #[inline(always)]
    pub fn hashing(&mut self) {
        self.hashing = true;
        self.len = 0;
        self.parts = 0;
        self.whole = None;
        self.raw_len = 0;
        self.raw_ok = true;
        self.short = 0;
    }

    #[inline(always)]
    fn hash_part<T: crate::KeyPart + ?Sized>(&mut self, value: &T) {
        if !self.raw_ok {
            return;
        }
        let mut sink = RawSink {
            buf: &mut self.raw.0,
            len: self.raw_len,
            short: self.short,
        };
        self.raw_ok = raw::write(value, &mut sink).is_ok();
        self.raw_len = sink.len;
        self.short = sink.short;
    }

    /// The fingerprint of the raw stream written since
    /// [`KeyBuilder::hashing`] (a function of the head and the stream);
    /// `None` when some part had none, or without `hashing`. The builder
    /// then takes the key text; the stream stays for [`KeyBuilder::raw_stream`].
    #[inline(always)]
    pub(crate) fn raw_fingerprint(&mut self) -> Option<u128> {
        if !std::mem::take(&mut self.hashing) || !self.raw_ok {
            self.raw_ok = false;
            return None;
        }
        Some(match self.raw_len {
            len @ ..=SHORT_RAW => raw_short(self.head_fp, self.short, len),
            len => raw_combine(self.head_fp, self.raw.filled(len)),
        })
    }

    /// The raw stream a hot entry is compared with: empty for a stream of
    /// at most [`SHORT_RAW`] bytes (whose fingerprint is injective, see
    /// `raw_short`), else the whole stream. Only meaningful after
    /// [`KeyBuilder::raw_fingerprint`] returned `Some`.
    #[inline(always)]
    pub(crate) fn raw_stream(&self) -> &[u8] {
        match self.raw_len {
            ..=SHORT_RAW => &[],
            len => self.raw.filled(len),
        }
    }

    /// The text `value` writes as one argument, however long (never
    /// hashed). Not an API: the key scheme's tests read it back.
    pub fn arg_text<T: crate::KeyPart + ?Sized>(value: &T) -> Result<String, Error> {
        let mut out = Vec::new();
        writer::write(value, &mut out).map_err(|e| Error::Key(e.to_string()))?;
        Ok(key_text(&out)?.to_owned())
    }

    /// Finish the key and return its fingerprint; [`KeyBuilder::text`] then
    /// gives the stored text, for the paths that need it.
    #[inline]
    pub(crate) fn finish(&mut self) -> Result<u128, Error> {
        self.not_hashing()?;
        if let Some(e) = &self.error {
            return Err(Error::Key(e.clone()));
        }
        if self.parts == 0 {
            return Ok(combine(self.head_fp, None));
        }
        if let Some(whole) = &self.whole {
            // Keep the start of the arguments, then `#` and the digest of
            // the whole text.
            let keep = KEEP.saturating_sub(self.head.len() + 1).min(self.room);
            let mut tail = Vec::with_capacity(HASH_TAIL);
            write_hash_tail(&mut tail, whole);
            write_bytes(&mut self.buf.0[keep..keep + HASH_TAIL], &tail);
            self.len = keep + HASH_TAIL;
        }
        Ok(combine(self.head_fp, Some(self.buf.filled(self.len))))
    }

    /// The finished key's stored text (after [`KeyBuilder::finish`]).
    pub(crate) fn text(&self) -> Result<String, Error> {
        self.not_hashing()?;
        let args = key_text(self.buf.filled(self.len))?;
        let mut text = String::with_capacity(self.head.len() + 1 + args.len());
        text.push_str(self.head);
        if self.parts > 0 {
            text.push(':');
            text.push_str(args);
        }
        Ok(text)
    }

    /// Whether `stored` is this finished key's stored text: what a local
    /// hit compares before it serves (no allocation).
    #[inline]
    pub(crate) fn is_key(&self, stored: &str) -> bool {
        let stored = stored.as_bytes();
        let head = self.head.as_bytes();
        if self.parts == 0 {
            return stored == head;
        }
        let args = self.buf.filled(self.len);
        stored.len() == head.len() + 1 + args.len()
            && stored.starts_with(head)
            && stored[head.len()] == b':'
            && &stored[head.len() + 1..] == args
    }

    /// An error while the builder writes raw streams (between
    /// [`KeyBuilder::hashing`] and [`KeyBuilder::raw_fingerprint`]): what
    /// was written since is not key text.
    fn not_hashing(&self) -> Result<(), Error> {
        match self.hashing {
            false => Ok(()),
            true => Err(Error::Key(
                "a key builder cannot give a key while it writes raw streams".to_owned(),
            )),
        }
    }

    /// The finished key as an owned [`Key`], with its whole text.
    pub fn into_key(mut self) -> Result<Key, Error> {
        let fp = self.finish()?;
        let stored = self.text()?;
        let whole = match self.whole.take() {
            Some(w) => Some(key_text(&w)?.to_owned()),
            None => None,
        };
        Ok(Key::from_parts(whole, &stored, fp))
    }
}

impl cachefn_backends::KeyText for KeyBuilder {
    #[inline]
    fn is_key(&self, stored: &str) -> bool {
        KeyBuilder::is_key(self, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::super::scheme::{fingerprint, normalize};
    use super::*;

    fn key_of<T: serde::Serialize + ?Sized>(v: &T) -> String {
        let mut kb = KeyBuilder::new("f:v1");
        kb.part(v);
        kb.into_key().unwrap().stored().to_owned()
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
        // A finished key is already in normal form, and it is the normal
        // form of the whole text: the hash covers every byte of it.
        // The stored text is the normal form of the whole text: the digest
        // covers every byte of it.
        assert_eq!(normalize(&format!("f:v1:{long}")), k);
        let mut kb = KeyBuilder::new("f:v1");
        kb.part(long.as_str());
        let key = kb.into_key().unwrap();
        assert_eq!(key.as_str(), format!("f:v1:{long}"));
        assert_eq!(Key::new(key.as_str()), key);
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
            assert_eq!(Key::new(key.as_str()), key, "{key}");
            assert_eq!(fingerprint(key.stored().as_bytes()), key.fingerprint());
            assert!(seen.insert(key.fingerprint()));
        }
    }

    #[test]
    fn a_failing_argument_is_a_key_error() {
        struct Fails;
        impl serde::Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no key for this"))
            }
        }
        let mut kb = KeyBuilder::new("f:v1");
        kb.part(&1u8);
        kb.part(&Fails);
        match kb.into_key() {
            Err(Error::Key(msg)) => assert!(msg.contains("no key for this"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(KeyBuilder::arg_text(&Fails).is_err());
        assert_eq!(KeyBuilder::arg_text("a b").unwrap(), "a%20b");
    }
}
