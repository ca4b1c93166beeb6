//! The identity of a value type: its serde shape, traced once per type
//! through the type's own `Deserialize` impl.
//!
//! A value is read back by the type's `Deserialize` impl, so what that impl
//! asks of the format *is* the shape the bytes must have been written in:
//! struct and enum names, field names in order, variant names in order,
//! every primitive's kind, options, sequences, maps and tuples, all the way
//! down. [`fingerprint`] asks a type's `Deserialize` impl for a value from a
//! tracing deserializer that records every request in a tree, and hashes the
//! tree. Two builds of one source get one fingerprint (nothing in it depends
//! on the compiler, the crate's name or module paths), and any change in the
//! serde shape changes it: reordered, renamed, added or removed fields or
//! variants, changed field types, changes in nested types.
//!
//! How the tracer gets past what a single pass cannot see:
//! - **Enums**: a pass takes one variant per enum, so passes repeat, each
//!   taking a variant not traced yet, until every variant of every enum in
//!   the tree has been traced.
//! - **Recursive types** (`enum List { Cons(u8, Box<List>), Nil }`, a tree
//!   of `Vec<Node>`): a container met again inside itself is recorded as a
//!   reference to it, and its value is made by replaying what was recorded
//!   for it with the smallest choices (no element, `None`, a variant that
//!   completed without recursion).
//! - **Types that validate** (a `NonZeroU32`, a date parsed from a string, a
//!   UUID from 16 bytes): a leaf whose value the type rejects is offered the
//!   next of a few candidates (`0`, `1`; `""`, `"0"`, a date, a UUID, an
//!   address, a URL; 0, 4, 8, 12, 16 or 32 bytes) in the next pass.
//!
//! What it cannot trace (a type that rejects every candidate, or asks for
//! `deserialize_any`, as untagged and internally tagged enums, `flatten`
//! and `serde_json::Value` do: postcard cannot read those back either)
//! leaves a part of the tree unknown. Such a type's fingerprint also
//! includes its `type_name`, a warning is logged once, and the rest of the
//! tree still counts.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

/// One request a `Deserialize` impl made (a node of the shape tree).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Unknown,
    Bool,
    I8,
    I16,
    I32,
    I64,
    I128,
    U8,
    U16,
    U32,
    U64,
    U128,
    F32,
    F64,
    Char,
    Str,
    Bytes,
    Unit,
    Option,
    Seq,
    Map,
    Tuple(usize),
    UnitStruct(&'static str),
    NewtypeStruct(&'static str),
    TupleStruct(&'static str, usize),
    Struct(&'static str, &'static [&'static str]),
    Enum(&'static str, &'static [&'static str]),
    UnitVariant,
    NewtypeVariant,
    TupleVariant(usize),
    StructVariant(&'static [&'static str]),
    /// The container `n` levels up: a recursive type.
    Ref(usize),
    /// A request postcard does not support (`deserialize_any`, ...).
    Unsupported(&'static str),
    /// Different requests at one place in different passes.
    Mixed,
}

struct Node {
    kind: Kind,
    children: Vec<usize>,
    /// A pass returned a value from this node.
    ok: bool,
    /// The leaf candidate to offer.
    candidate: usize,
    /// Enums: how often each variant was taken.
    picks: Vec<u32>,
}

/// How many passes, nodes and nested containers a trace may take.
const MAX_PASSES: usize = 512;
const MAX_NODES: usize = 200_000;
const MAX_DEPTH: usize = 128;

struct Trace {
    nodes: Vec<Node>,
    /// The containers being read, innermost last: their kind and the node
    /// where they were recorded.
    stack: Vec<(Kind, usize)>,
    /// Per node, computed before each pass: traced completely.
    done: Vec<bool>,
    /// Per node, computed before each pass: holds a reference (recursion).
    recursive: Vec<bool>,
    /// The leaf a pass offered a value last.
    last_leaf: Option<usize>,
}

/// Why a pass stopped: the tracer's own reasons (`own`), or an error of
/// the type's `Deserialize` impl (it rejected a value).
#[derive(Debug)]
struct Stop(String, bool);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Stop(msg.to_string(), false)
    }
}

fn stop(why: &str) -> Stop {
    Stop(why.to_owned(), true)
}

impl Trace {
    fn new() -> Trace {
        let mut t = Trace {
            nodes: Vec::new(),
            stack: Vec::new(),
            done: Vec::new(),
            recursive: Vec::new(),
            last_leaf: None,
        };
        t.add();
        t
    }

    fn add(&mut self) -> usize {
        self.nodes.push(Node {
            kind: Kind::Unknown,
            children: Vec::new(),
            ok: false,
            candidate: 0,
            picks: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// The `i`th child of `node`, made (unknown) if it is new.
    fn child(&mut self, node: usize, i: usize) -> Result<usize, Stop> {
        if let Some(&c) = self.nodes[node].children.get(i) {
            return Ok(c);
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(stop("too many nodes"));
        }
        while self.nodes[node].children.len() <= i {
            let c = self.add();
            self.nodes[node].children.push(c);
        }
        Ok(self.nodes[node].children[i])
    }

    /// Record that `node` is a `kind`.
    fn enter(&mut self, node: usize, kind: Kind) -> Result<(), Stop> {
        let known = self.nodes[node].kind;
        if known == kind {
            return Ok(());
        }
        if known == Kind::Unknown {
            self.nodes[node].kind = kind;
            return Ok(());
        }
        self.nodes[node].kind = Kind::Mixed;
        Err(stop("requests differ between passes"))
    }

    /// `done` and `recursive` for every node, children first.
    fn summarize(&mut self) {
        let n = self.nodes.len();
        self.done = vec![false; n];
        self.recursive = vec![false; n];
        // Children always have higher indices than their parent.
        for i in (0..n).rev() {
            let node = &self.nodes[i];
            let kids = &node.children;
            let all = |f: &Vec<bool>| kids.iter().all(|&c| f[c]);
            self.recursive[i] =
                matches!(node.kind, Kind::Ref(_)) || kids.iter().any(|&c| self.recursive[c]);
            self.done[i] = match node.kind {
                Kind::Unknown | Kind::Mixed | Kind::Unsupported(_) => false,
                Kind::Enum(_, variants) => {
                    !variants.is_empty() && kids.len() == variants.len() && all(&self.done)
                }
                Kind::Option | Kind::Seq | Kind::NewtypeStruct(_) | Kind::NewtypeVariant => {
                    kids.len() == 1 && all(&self.done)
                }
                Kind::Map => kids.len() == 2 && all(&self.done),
                Kind::Tuple(n) | Kind::TupleStruct(_, n) | Kind::TupleVariant(n) => {
                    kids.len() == n && all(&self.done)
                }
                Kind::Struct(_, f) | Kind::StructVariant(f) => {
                    kids.len() == f.len() && all(&self.done)
                }
                _ => node.ok,
            };
        }
    }

    /// The tree as bytes: each node's kind, then its children.
    fn describe(&self, node: usize, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn texts(out: &mut Vec<u8>, list: &[&str]) {
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            list.iter().for_each(|s| text(out, s));
        }
        let n = &self.nodes[node];
        let (tag, names): (u8, Option<(&str, &[&str])>) = match n.kind {
            Kind::Unknown => (0, None),
            Kind::Bool => (1, None),
            Kind::I8 => (2, None),
            Kind::I16 => (3, None),
            Kind::I32 => (4, None),
            Kind::I64 => (5, None),
            Kind::I128 => (6, None),
            Kind::U8 => (7, None),
            Kind::U16 => (8, None),
            Kind::U32 => (9, None),
            Kind::U64 => (10, None),
            Kind::U128 => (11, None),
            Kind::F32 => (12, None),
            Kind::F64 => (13, None),
            Kind::Char => (14, None),
            Kind::Str => (15, None),
            Kind::Bytes => (16, None),
            Kind::Unit => (17, None),
            Kind::Option => (18, None),
            Kind::Seq => (19, None),
            Kind::Map => (20, None),
            Kind::Tuple(len) => {
                out.push(21);
                out.extend_from_slice(&(len as u64).to_le_bytes());
                (255, None)
            }
            Kind::UnitStruct(name) => (22, Some((name, &[]))),
            Kind::NewtypeStruct(name) => (23, Some((name, &[]))),
            Kind::TupleStruct(name, len) => {
                out.push(24);
                out.extend_from_slice(&(len as u64).to_le_bytes());
                (255, Some((name, &[])))
            }
            Kind::Struct(name, fields) => (25, Some((name, fields))),
            Kind::Enum(name, variants) => (26, Some((name, variants))),
            Kind::UnitVariant => (27, None),
            Kind::NewtypeVariant => (28, None),
            Kind::TupleVariant(len) => {
                out.push(29);
                out.extend_from_slice(&(len as u64).to_le_bytes());
                (255, None)
            }
            Kind::StructVariant(fields) => (30, Some(("", fields))),
            Kind::Ref(up) => {
                out.push(31);
                out.extend_from_slice(&(up as u64).to_le_bytes());
                (255, None)
            }
            Kind::Unsupported(what) => (32, Some((what, &[]))),
            Kind::Mixed => (33, None),
        };
        if tag != 255 {
            out.push(tag);
        }
        if let Some((name, list)) = names {
            text(out, name);
            texts(out, list);
        }
        out.extend_from_slice(&(n.children.len() as u32).to_le_bytes());
        for &c in &n.children {
            self.describe(c, out);
        }
    }
}

/// What [`fingerprint`] found out about a type.
pub(crate) struct Shape {
    /// The first 8 bytes of BLAKE3 of the description.
    pub(crate) fingerprint: u64,
    /// Every part of the type was traced.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) complete: bool,
    /// The description (for tests and the warning).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) description: Vec<u8>,
}

/// Trace `T`'s serde shape (see the module docs). Takes a few passes over
/// the type; callers memoize it per type.
pub(crate) fn trace<T: DeserializeOwned>() -> Shape {
    let mut t = Trace::new();
    let mut complete = false;
    let mut last_error = String::new();
    for _ in 0..MAX_PASSES {
        t.summarize();
        if t.done[0] {
            complete = true;
            break;
        }
        t.stack.clear();
        t.last_leaf = None;
        let pass = T::deserialize(Tracer {
            t: &mut t,
            node: 0,
            replay: false,
        });
        if let Err(Stop(why, own)) = pass {
            // The type rejected a value (a leaf's, or what it made of the
            // last leaves): offer the last leaf its next candidate.
            if let (false, Some(leaf)) = (own, t.last_leaf) {
                t.nodes[leaf].candidate += 1;
            }
            last_error = why;
        }
        if t.nodes.len() >= MAX_NODES {
            break;
        }
    }
    let mut description = b"cachefn shape 1\0".to_vec();
    description.push(u8::from(complete));
    t.describe(0, &mut description);
    if !complete {
        let name = std::any::type_name::<T>();
        description.extend_from_slice(name.as_bytes());
        tracing::warn!(
            target: "cachefn",
            type_name = name,
            error = %last_error,
            "cachefn could not trace all of this type's serde shape (its Deserialize impl rejects every value offered, or calls deserialize_any, which postcard cannot read either); its cache identity also includes its type name, so a change in the untraced part might not be noticed across builds: give the function another `version` when you change this type"
        );
    }
    Shape {
        fingerprint: u64::from_le_bytes(
            blake3::hash(&description).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        ),
        complete,
        description,
    }
}

/// A deserializer that records what it is asked for at `node`.
struct Tracer<'a> {
    t: &'a mut Trace,
    node: usize,
    /// Make a value from what was recorded (recursion), recording nothing.
    replay: bool,
}

const STRS: &[&str] = &[
    "",
    "0",
    "a",
    "0.0.0",
    "1970-01-01T00:00:00Z",
    "1970-01-01",
    "00:00:00",
    "00000000-0000-0000-0000-000000000000",
    "127.0.0.1",
    "127.0.0.1:80",
    "http://localhost/",
    "UTC",
];
const ZEROS: [u8; 32] = [0; 32];
const BYTES: &[&[u8]] = &[&[], &ZEROS, &[0; 16], &[0; 4], &[0; 8], &[0; 12]];

impl<'a> Tracer<'a> {
    fn at(&mut self, node: usize) -> Tracer<'_> {
        Tracer {
            t: self.t,
            node,
            replay: self.replay,
        }
    }

    fn leaf<X: Copy, R>(
        self,
        kind: Kind,
        candidates: &[X],
        visit: impl FnOnce(X) -> Result<R, Stop>,
    ) -> Result<R, Stop> {
        self.t.enter(self.node, kind)?;
        let c = self.t.nodes[self.node].candidate;
        let Some(&value) = candidates.get(c) else {
            return Err(stop("every value offered was rejected"));
        };
        self.t.last_leaf = Some(self.node);
        let r = visit(value);
        self.t.nodes[self.node].ok |= r.is_ok();
        r
    }

    /// Read a container of `kind`: recorded here, or, if the same container
    /// is already being read further up (a recursive type), recorded as a
    /// reference and made by replaying what was recorded up there.
    fn container<R>(
        mut self,
        kind: Kind,
        body: impl FnOnce(Tracer<'_>) -> Result<R, Stop>,
    ) -> Result<R, Stop> {
        if self.t.stack.len() >= MAX_DEPTH {
            return Err(stop("too deep"));
        }
        if let Some(at) = self.t.stack.iter().rposition(|(k, _)| *k == kind) {
            let (up, target) = (self.t.stack.len() - at, self.t.stack[at].1);
            self.t.enter(self.node, Kind::Ref(up))?;
            self.t.nodes[self.node].ok = true;
            self.node = target;
            self.replay = true;
        }
        self.t.enter(self.node, kind)?;
        self.t.stack.push((kind, self.node));
        let node = self.node;
        let r = body(self.at(node));
        self.t.stack.pop();
        self.t.nodes[node].ok |= r.is_ok();
        r
    }

    /// Read `len` elements, the `i`th at child `i` (or all at child 0).
    fn elements<'de, V: Visitor<'de>>(
        mut self,
        len: usize,
        one_child: bool,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        let (node, replay) = (self.node, self.replay);
        let r = visitor.visit_seq(Elements {
            t: self.at(node).t,
            node,
            replay,
            next: 0,
            len,
            one_child,
        });
        self.t.nodes[node].ok |= r.is_ok();
        r
    }
}

struct Elements<'a> {
    t: &'a mut Trace,
    node: usize,
    replay: bool,
    next: usize,
    len: usize,
    one_child: bool,
}

impl<'de> de::SeqAccess<'de> for Elements<'_> {
    type Error = Stop;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Stop> {
        if self.next >= self.len {
            return Ok(None);
        }
        let i = if self.one_child { 0 } else { self.next };
        self.next += 1;
        let node = self.t.child(self.node, i)?;
        seed.deserialize(Tracer {
            t: self.t,
            node,
            replay: self.replay,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.len - self.next)
    }
}

struct Entries<'a> {
    t: &'a mut Trace,
    node: usize,
    replay: bool,
    left: usize,
}

impl<'de> de::MapAccess<'de> for Entries<'_> {
    type Error = Stop;

    fn next_key_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Stop> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let node = self.t.child(self.node, 0)?;
        seed.deserialize(Tracer {
            t: self.t,
            node,
            replay: self.replay,
        })
        .map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Stop> {
        let node = self.t.child(self.node, 1)?;
        seed.deserialize(Tracer {
            t: self.t,
            node,
            replay: self.replay,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

/// The variant a pass takes at an enum node.
fn pick_variant(t: &mut Trace, node: usize, variants: usize, replay: bool) -> Result<usize, Stop> {
    let done = |t: &Trace, i: usize| {
        t.nodes[node]
            .children
            .get(i)
            .is_some_and(|&c| t.done.get(c).copied().unwrap_or(false))
    };
    if replay {
        // The smallest choice: a variant traced completely, without recursion.
        let best = (0..variants).filter(|&i| done(t, i)).min_by_key(|&i| {
            let c = t.nodes[node].children[i];
            (t.recursive[c], i)
        });
        return best.ok_or_else(|| stop("no variant traced yet to end a recursion with"));
    }
    let mut picks = std::mem::take(&mut t.nodes[node].picks);
    picks.resize(variants, 0);
    let open: Vec<usize> = (0..variants).filter(|&i| !done(t, i)).collect();
    let pool = if open.is_empty() {
        (0..variants).collect()
    } else {
        open
    };
    let i = *pool
        .iter()
        .min_by_key(|&&i| (picks[i], i))
        .expect("variants");
    picks[i] += 1;
    t.nodes[node].picks = picks;
    Ok(i)
}

struct Variant<'a> {
    tracer: Tracer<'a>,
    index: usize,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = Stop;
    type Variant = Tracer<'a>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Tracer<'a>), Stop> {
        let Variant { tracer, index } = self;
        let value = seed.deserialize((index as u32).into_deserializer())?;
        let node = tracer.t.child(tracer.node, index)?;
        Ok((
            value,
            Tracer {
                t: tracer.t,
                node,
                replay: tracer.replay,
            },
        ))
    }
}

impl<'de> de::VariantAccess<'de> for Tracer<'_> {
    type Error = Stop;

    fn unit_variant(self) -> Result<(), Stop> {
        self.t.enter(self.node, Kind::UnitVariant)?;
        self.t.nodes[self.node].ok = true;
        Ok(())
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(mut self, seed: S) -> Result<S::Value, Stop> {
        self.t.enter(self.node, Kind::NewtypeVariant)?;
        let node = self.node;
        let c = self.t.child(node, 0)?;
        let r = seed.deserialize(self.at(c));
        self.t.nodes[node].ok |= r.is_ok();
        r
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::TupleVariant(len))?;
        self.elements(len, false, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::StructVariant(fields))?;
        self.elements(fields.len(), false, visitor)
    }
}

macro_rules! leaves {
    ($($method:ident $kind:ident $visit:ident [$($c:expr),*];)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
            self.leaf(Kind::$kind, &[$($c),*], |x| visitor.$visit(x))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Tracer<'_> {
    type Error = Stop;

    leaves! {
        deserialize_bool Bool visit_bool [false, true];
        deserialize_i8 I8 visit_i8 [0, 1];
        deserialize_i16 I16 visit_i16 [0, 1];
        deserialize_i32 I32 visit_i32 [0, 1];
        deserialize_i64 I64 visit_i64 [0, 1];
        deserialize_i128 I128 visit_i128 [0, 1];
        deserialize_u8 U8 visit_u8 [0, 1];
        deserialize_u16 U16 visit_u16 [0, 1];
        deserialize_u32 U32 visit_u32 [0, 1];
        deserialize_u64 U64 visit_u64 [0, 1];
        deserialize_u128 U128 visit_u128 [0, 1];
        deserialize_f32 F32 visit_f32 [0.0, 1.0];
        deserialize_f64 F64 visit_f64 [0.0, 1.0];
        deserialize_char Char visit_char ['a', '0'];
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Str, STRS, |s| visitor.visit_str(s))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Str, STRS, |s| visitor.visit_string(s.to_owned()))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Bytes, BYTES, |b| visitor.visit_bytes(b))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Bytes, BYTES, |b| visitor.visit_byte_buf(b.to_vec()))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.leaf(Kind::Unit, &[()], |()| visitor.visit_unit())
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Option)?;
        let (node, replay) = (self.node, self.replay);
        if replay {
            return visitor.visit_none();
        }
        let c = self.t.child(node, 0)?;
        let r = visitor.visit_some(self.at(c));
        self.t.nodes[node].ok |= r.is_ok();
        r
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Seq)?;
        let len = usize::from(!self.replay);
        self.elements(len, true, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Tuple(len))?;
        self.elements(len, false, visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Map)?;
        let (node, replay) = (self.node, self.replay);
        let r = visitor.visit_map(Entries {
            t: self.at(node).t,
            node,
            replay,
            left: usize::from(!replay),
        });
        self.t.nodes[node].ok |= r.is_ok();
        r
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.container(Kind::UnitStruct(name), |_| visitor.visit_unit())
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.container(Kind::NewtypeStruct(name), |mut this| {
            let c = this.t.child(this.node, 0)?;
            visitor.visit_newtype_struct(this.at(c))
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.container(Kind::TupleStruct(name, len), |this| {
            this.elements(len, false, visitor)
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        self.container(Kind::Struct(name, fields), |this| {
            this.elements(fields.len(), false, visitor)
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        if variants.is_empty() {
            // An enum without variants has no values.
            self.t.enter(self.node, Kind::Enum(name, variants))?;
            return Err(stop("an enum without variants"));
        }
        self.container(Kind::Enum(name, variants), |this| {
            let index = pick_variant(this.t, this.node, variants.len(), this.replay)?;
            visitor.visit_enum(Variant {
                tracer: this,
                index,
            })
        })
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Unsupported("identifier"))?;
        Err(stop("deserialize_identifier"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Unsupported("any"))?;
        Err(stop("deserialize_any"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        self.t.enter(self.node, Kind::Unsupported("ignored_any"))?;
        Err(stop("deserialize_ignored_any"))
    }

    fn is_human_readable(&self) -> bool {
        // As postcard, which writes the values.
        false
    }
}

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, HashSet};

    fn complete<T: DeserializeOwned>() -> u64 {
        let shape = trace::<T>();
        assert!(shape.complete, "{} not traced", std::any::type_name::<T>());
        shape.fingerprint
    }

    #[derive(Serialize, Deserialize)]
    enum List {
        Cons(u8, Box<List>),
        Nil,
    }

    /// The recursive variant first, and only reachable through it.
    #[derive(Serialize, Deserialize)]
    enum Expr {
        Add(Box<Expr>, Box<Expr>),
        Neg { of: Box<Expr> },
        Lit(Lit),
    }

    #[derive(Serialize, Deserialize)]
    enum Lit {
        Int(i64),
        Text(String),
        Nothing,
    }

    #[derive(Serialize, Deserialize)]
    struct Tree {
        children: Vec<Tree>,
        name: String,
        parent: Option<Box<Tree>>,
        by_name: BTreeMap<String, Tree>,
    }

    #[derive(Serialize, Deserialize)]
    struct Meters(f64);

    #[derive(Serialize, Deserialize)]
    struct Feet(f64);

    #[derive(Serialize, Deserialize)]
    struct Unit;

    /// Rejects the first value offered, as types that validate do.
    #[derive(Serialize)]
    struct Even(u32);

    impl<'de> Deserialize<'de> for Even {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            match s.parse::<u32>() {
                Ok(n) if n % 2 == 0 && !s.is_empty() => Ok(Even(n)),
                _ => Err(de::Error::custom("not an even number")),
            }
        }
    }

    #[derive(Serialize, Deserialize)]
    struct WithEven {
        a: Even,
        after: Lit,
    }

    #[test]
    fn the_data_model_traces_completely() {
        complete::<u8>();
        complete::<(
            bool,
            i8,
            i16,
            i32,
            i64,
            i128,
            u16,
            u32,
            u64,
            u128,
            f32,
            f64,
            char,
        )>();
        complete::<(String, Vec<u8>, (), Option<Vec<Option<u8>>>)>();
        complete::<BTreeMap<String, HashSet<u64>>>();
        complete::<[u16; 4]>();
        complete::<(Unit, Meters, Lit)>();
        complete::<std::num::NonZeroU32>();
        complete::<std::time::Duration>();
        complete::<std::time::SystemTime>();
        complete::<std::net::IpAddr>();
        complete::<std::net::SocketAddr>();
        complete::<std::path::PathBuf>();
        complete::<WithEven>();
    }

    #[test]
    fn recursive_types_trace_completely() {
        complete::<List>();
        complete::<Expr>();
        complete::<Tree>();
        complete::<Vec<Option<Box<Expr>>>>();
        // Every variant of the nested enum is in the shape.
        let desc = String::from_utf8_lossy(&trace::<Expr>().description).into_owned();
        for name in ["Add", "Neg", "Lit", "Int", "Text", "Nothing", "of"] {
            assert!(desc.contains(name), "{name} in {desc:?}");
        }
    }

    #[test]
    fn another_shape_is_another_fingerprint() {
        mod a {
            use serde::Deserialize;
            #[derive(Deserialize)]
            pub struct P {
                pub x: i32,
                pub y: i32,
            }
            #[derive(Deserialize)]
            pub enum E {
                A,
                B(u8),
            }
            #[derive(Deserialize)]
            pub struct Outer {
                pub e: Option<Vec<E>>,
            }
        }
        mod reordered {
            #[derive(serde::Deserialize)]
            pub struct P {
                pub y: i32,
                pub x: i32,
            }
        }
        mod retyped {
            #[derive(serde::Deserialize)]
            pub struct P {
                pub x: i64,
                pub y: i32,
            }
        }
        mod variant_added {
            use serde::Deserialize;
            #[derive(Deserialize)]
            pub enum E {
                A,
                B(u8),
                C,
            }
            #[derive(Deserialize)]
            pub struct Outer {
                pub e: Option<Vec<E>>,
            }
        }
        mod variant_retyped {
            use serde::Deserialize;
            #[derive(Deserialize)]
            pub enum E {
                A,
                B(u16),
            }
            #[derive(Deserialize)]
            pub struct Outer {
                pub e: Option<Vec<E>>,
            }
        }
        let p = complete::<a::P>();
        assert_ne!(p, complete::<reordered::P>());
        assert_ne!(p, complete::<retyped::P>());
        let outer = complete::<a::Outer>();
        assert_ne!(outer, complete::<variant_added::Outer>());
        assert_ne!(outer, complete::<variant_retyped::Outer>());
        assert_ne!(complete::<Meters>(), complete::<Feet>());
        assert_ne!(complete::<Meters>(), complete::<f64>());
        assert_eq!(p, trace::<a::P>().fingerprint, "deterministic");
    }

    #[test]
    fn what_postcard_cannot_read_is_incomplete_but_named() {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Untagged {
            _A(u8),
        }
        #[derive(Deserialize)]
        struct Flat {
            #[serde(flatten)]
            _inner: BTreeMap<String, u8>,
        }
        #[derive(Deserialize)]
        enum Never {}
        assert!(!trace::<Untagged>().complete);
        assert!(!trace::<Flat>().complete);
        assert!(!trace::<Never>().complete);
        assert!(!trace::<Vec<Never>>().complete);
        mod other {
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            pub enum Untagged {
                _A(u8),
            }
        }
        // Named: the same (untraceable) shape, another type.
        assert_ne!(
            trace::<Untagged>().fingerprint,
            trace::<other::Untagged>().fingerprint
        );
    }
}
