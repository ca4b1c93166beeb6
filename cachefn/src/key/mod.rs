//! Cache keys: built from arguments without allocating, readable when short,
//! injective, at most [`MAX_KEY_LEN`] bytes, stable across processes.
//!
//! - [`scheme`]: [`Key`], the normal form of user-supplied keys, escaping
//!   and the fingerprints that address keys in the local tier;
//! - [`builder`]: [`KeyBuilder`], which builds a memoized call's key on the
//!   stack;
//! - [`writer`]: the serde serializer that writes each argument;
//! - `kind`: whether a value given to `f::clear_by` and its siblings writes
//!   the same kind of text as its `vary_on` path.
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
//! | integers, floats, `bool` | decimal (floats always with a `.`, `inf`, `-inf`, or `nan` and the bits), `true` / `false` |
//! | strings | `[A-Za-z0-9_.-]` as is, every other byte `%XX`, and the first byte too unless it is a letter or `_` (`5` is `%35`, `true` is `%74rue`); the empty string is `""` |
//! | chars, bytes | `'` and the char (`'a`), `*` and the bytes (`*ab`), escaped as strings are |
//! | `None` / `Some(x)` | `~` / the text of `x` (`+` marks a `Some` of an `Option`: `Some(None)` is `+~`) |
//! | `()`, unit structs | `-` |
//! | sequences, maps | `[a,b]`, `{k=v,k=v}` (map entries sorted, so `HashMap` order does not matter) |
//! | tuples, structs | `(a,b)` (newtype structs are transparent; a skipped field is `!`) |
//! | enum variants | `.Name`, `.Name(a,b)` |
//!
//! Every structural character is escaped inside strings and names, so the
//! text can be parsed back: two different argument tuples never share a
//! key. [`writer`] says exactly which values share a text (integers of
//! different widths with one value, for example) and why that is safe.
//! Only printable ASCII without spaces appears, as memcached requires.
//!
//! A text longer than [`MAX_KEY_LEN`] is stored as its first bytes, `#`
//! and 192 bits of BLAKE3 of the whole text (`#` appears nowhere else);
//! it is what [`Key::new`] makes of the whole text. Since the whole text is
//! injective and its digest is collision-resistant, two argument tuples
//! never share a stored key, whoever chooses them. Use `BTreeSet` rather
//! than `HashSet` in keys: serde cannot tell a set from a sequence, and a
//! `HashSet` iterates in a random order.
//!
//! Inside the process, keys are found by fingerprints keyed with a
//! per-process secret ([`scheme`]), and every hit compares the full key
//! (or, for a thread's hot entries, the arguments' whole raw stream) with
//! the caller's: a fingerprint is an address, never an identity.

pub(crate) mod builder;
mod kind;
mod raw;
pub(crate) mod scheme;
mod sip;
pub(crate) mod writer;

pub use builder::KeyBuilder;
pub use scheme::{Key, MAX_KEY_LEN};

#[doc(hidden)]
pub use scheme::collide_all_fingerprints;
pub(crate) use scheme::{
    escape_name, escape_text, fingerprint, head_fingerprint, normalize, shorten, split_head,
};
