//! The key writer over the whole serde data model: arbitrary trees of all 29
//! types, with names and variant indices drawn too.
//!
//! What "the same key" means is the key writer's rule (`cachefn/src/key/
//! writer.rs`): the text is injective modulo integer and float widths, type
//! and field names, variant indices, a `Some` around a non-option, and map
//! order. [`normal`] applies exactly that rule to a tree, and the tests
//! check, for every generated tree:
//!
//! - that the whole (never hashed) text parses back to the tree's normal
//!   form, which proves the text injective on it;
//! - that two trees share a key, and a stored key, exactly when their
//!   normal forms are equal, across every key of the run;
//! - that the key is what `Key::new` makes of the whole text, and its
//!   stored form is bounded (a long one hashes that injective text);
//! - that rewrites the rule allows (another integer width, a newtype around
//!   a value, other names, shuffled map entries) keep the key.

use std::collections::HashMap;

use cachefn::__private::KeyBuilder;
use cachefn::Key;
use parking_lot::Mutex;
use proptest::prelude::*;
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant, SerializeTuple,
    SerializeTupleStruct, SerializeTupleVariant,
};
use serde::{Serialize, Serializer};

type Name = &'static str;
type Fields = Vec<(Name, Option<Value>)>;

/// A value of the serde data model: one variant per serializer method.
#[derive(Clone, Debug)]
enum Value {
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    I128(i128),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    U128(u128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Value>),
    Unit,
    UnitStruct(Name),
    UnitVariant(Name, u32, Name),
    NewtypeStruct(Name, Box<Value>),
    NewtypeVariant(Name, u32, Name, Box<Value>),
    Seq(Vec<Value>),
    Tuple(Vec<Value>),
    TupleStruct(Name, Vec<Value>),
    TupleVariant(Name, u32, Name, Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A field that is `None` is skipped (`skip_serializing_if`).
    Struct(Name, Fields),
    StructVariant(Name, u32, Name, Fields),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(v) => s.serialize_bool(*v),
            Value::I8(v) => s.serialize_i8(*v),
            Value::I16(v) => s.serialize_i16(*v),
            Value::I32(v) => s.serialize_i32(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::I128(v) => s.serialize_i128(*v),
            Value::U8(v) => s.serialize_u8(*v),
            Value::U16(v) => s.serialize_u16(*v),
            Value::U32(v) => s.serialize_u32(*v),
            Value::U64(v) => s.serialize_u64(*v),
            Value::U128(v) => s.serialize_u128(*v),
            Value::F32(v) => s.serialize_f32(*v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::Char(v) => s.serialize_char(*v),
            Value::Str(v) => s.serialize_str(v),
            Value::Bytes(v) => s.serialize_bytes(v),
            Value::None => s.serialize_none(),
            Value::Some(v) => s.serialize_some(v),
            Value::Unit => s.serialize_unit(),
            Value::UnitStruct(n) => s.serialize_unit_struct(n),
            Value::UnitVariant(n, i, v) => s.serialize_unit_variant(n, *i, v),
            Value::NewtypeStruct(n, v) => s.serialize_newtype_struct(n, v),
            Value::NewtypeVariant(n, i, var, v) => s.serialize_newtype_variant(n, *i, var, v),
            Value::Seq(items) => {
                let mut c = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    c.serialize_element(v)?;
                }
                c.end()
            }
            Value::Tuple(items) => {
                let mut c = s.serialize_tuple(items.len())?;
                for v in items {
                    c.serialize_element(v)?;
                }
                c.end()
            }
            Value::TupleStruct(n, items) => {
                let mut c = s.serialize_tuple_struct(n, items.len())?;
                for v in items {
                    c.serialize_field(v)?;
                }
                c.end()
            }
            Value::TupleVariant(n, i, var, items) => {
                let mut c = s.serialize_tuple_variant(n, *i, var, items.len())?;
                for v in items {
                    c.serialize_field(v)?;
                }
                c.end()
            }
            Value::Map(entries) => {
                let mut c = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    c.serialize_key(k)?;
                    c.serialize_value(v)?;
                }
                c.end()
            }
            Value::Struct(n, fields) => {
                let mut c = s.serialize_struct(n, fields.len())?;
                for (f, v) in fields {
                    match v {
                        Some(v) => c.serialize_field(f, v)?,
                        None => c.skip_field(f)?,
                    }
                }
                c.end()
            }
            Value::StructVariant(n, i, var, fields) => {
                let mut c = s.serialize_struct_variant(n, *i, var, fields.len())?;
                for (f, v) in fields {
                    match v {
                        Some(v) => c.serialize_field(f, v)?,
                        None => c.skip_field(f)?,
                    }
                }
                c.end()
            }
        }
    }
}

/// A tree modulo what the key writer leaves out: the key's meaning.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Norm {
    Bool(bool),
    /// Negative, magnitude (zero is never negative).
    Int(bool, u128),
    /// The bits of a float that is not a NaN, as an `f64`.
    Float(u64),
    Nan32(u32),
    Nan64(u64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    /// A `Some` of an option.
    MarkedSome(Box<Norm>),
    Unit,
    UnitVariant(String),
    Variant(String, Vec<Option<Norm>>),
    Seq(Vec<Norm>),
    Record(Vec<Option<Norm>>),
    /// Sorted entries.
    Map(Vec<(Norm, Norm)>),
}

fn int(neg: bool, magnitude: u128) -> Norm {
    Norm::Int(neg && magnitude != 0, magnitude)
}

/// The value under any newtype structs.
fn strip(v: &Value) -> &Value {
    match v {
        Value::NewtypeStruct(_, inner) => strip(inner),
        v => v,
    }
}

/// The key writer's rule, applied to a tree.
fn normal(v: &Value) -> Norm {
    let fields = |fs: &Fields| fs.iter().map(|(_, v)| v.as_ref().map(normal)).collect();
    match v {
        Value::Bool(b) => Norm::Bool(*b),
        Value::I8(i) => int(*i < 0, i.unsigned_abs() as u128),
        Value::I16(i) => int(*i < 0, i.unsigned_abs() as u128),
        Value::I32(i) => int(*i < 0, i.unsigned_abs() as u128),
        Value::I64(i) => int(*i < 0, i.unsigned_abs() as u128),
        Value::I128(i) => int(*i < 0, i.unsigned_abs()),
        Value::U8(u) => int(false, *u as u128),
        Value::U16(u) => int(false, *u as u128),
        Value::U32(u) => int(false, *u as u128),
        Value::U64(u) => int(false, *u as u128),
        Value::U128(u) => int(false, *u),
        Value::F32(f) if f.is_nan() => Norm::Nan32(f.to_bits()),
        Value::F32(f) => Norm::Float((*f as f64).to_bits()),
        Value::F64(f) if f.is_nan() => Norm::Nan64(f.to_bits()),
        Value::F64(f) => Norm::Float(f.to_bits()),
        Value::Char(c) => Norm::Char(*c),
        Value::Str(s) => Norm::Str(s.clone()),
        Value::Bytes(b) => Norm::Bytes(b.clone()),
        Value::None => Norm::None,
        Value::Some(inner) => match strip(inner) {
            Value::None | Value::Some(_) => Norm::MarkedSome(Box::new(normal(inner))),
            _ => normal(inner),
        },
        Value::Unit | Value::UnitStruct(_) => Norm::Unit,
        Value::UnitVariant(_, _, var) => Norm::UnitVariant(var.to_string()),
        Value::NewtypeStruct(_, inner) => normal(inner),
        Value::NewtypeVariant(_, _, var, inner) => {
            Norm::Variant(var.to_string(), vec![Some(normal(inner))])
        }
        Value::Seq(items) => Norm::Seq(items.iter().map(normal).collect()),
        Value::Tuple(items) | Value::TupleStruct(_, items) => {
            Norm::Record(items.iter().map(|v| Some(normal(v))).collect())
        }
        Value::TupleVariant(_, _, var, items) => Norm::Variant(
            var.to_string(),
            items.iter().map(|v| Some(normal(v))).collect(),
        ),
        Value::Map(entries) => {
            let mut e: Vec<_> = entries
                .iter()
                .map(|(k, v)| (normal(k), normal(v)))
                .collect();
            e.sort();
            Norm::Map(e)
        }
        Value::Struct(_, fs) => Norm::Record(fields(fs)),
        Value::StructVariant(_, _, var, fs) => Norm::Variant(var.to_string(), fields(fs)),
    }
}

/// Reads key text back into the data model, knowing nothing of the type it
/// came from: if this inverts the writer, the writer is injective.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn parse(text: &str) -> Result<Norm, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        if p.i != p.s.len() {
            return Err(format!("trailing text at {}", p.i));
        }
        Ok(v)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Result<(), String> {
        if self.peek() != Some(b) {
            return Err(format!("expected {:?} at {}", b as char, self.i));
        }
        self.i += 1;
        Ok(())
    }

    /// A run of `[A-Za-z0-9_.%-]`, or `""`.
    fn token(&mut self) -> Result<&str, String> {
        let start = self.i;
        if self.peek() == Some(b'"') {
            self.eat(b'"')?;
            self.eat(b'"')?;
            return Ok("\"\"");
        }
        while let Some(b) = self.peek() {
            if !(b.is_ascii_alphanumeric() || b"_.%-".contains(&b)) {
                break;
            }
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("empty token at {start}"));
        }
        Ok(std::str::from_utf8(&self.s[start..self.i]).unwrap())
    }

    /// Escaped bytes back to bytes.
    fn unescape(token: &str) -> Result<Vec<u8>, String> {
        if token == "\"\"" {
            return Ok(Vec::new());
        }
        let b = token.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = token.get(i + 1..i + 3).ok_or("short escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        Ok(out)
    }

    fn text(&mut self) -> Result<String, String> {
        let t = self.token()?.to_owned();
        String::from_utf8(Self::unescape(&t)?).map_err(|e| e.to_string())
    }

    /// Items up to `close`, each read by `item`.
    fn items<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::new();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b) if b == close => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return Err(format!("expected , or {:?} at {}", close as char, self.i)),
            }
        }
    }

    fn field(&mut self) -> Result<Option<Norm>, String> {
        if self.peek() == Some(b'!') {
            self.i += 1;
            return Ok(None);
        }
        self.value().map(Some)
    }

    fn number(&mut self) -> Result<Norm, String> {
        let t = self.token()?;
        if t == "inf" || t == "-inf" || t.contains('.') {
            let f: f64 = t.parse().map_err(|e| format!("{t}: {e}"))?;
            return Ok(Norm::Float(f.to_bits()));
        }
        let (neg, digits) = match t.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, t),
        };
        let m: u128 = digits.parse().map_err(|e| format!("{t}: {e}"))?;
        Ok(int(neg, m))
    }

    fn value(&mut self) -> Result<Norm, String> {
        let b = self.peek().ok_or("unexpected end")?;
        match b {
            b'~' => {
                self.i += 1;
                Ok(Norm::None)
            }
            b'+' => {
                self.i += 1;
                Ok(Norm::MarkedSome(Box::new(self.value()?)))
            }
            b'-' => match self.s.get(self.i + 1) {
                Some(c) if c.is_ascii_digit() || *c == b'i' => self.number(),
                _ => {
                    self.i += 1;
                    Ok(Norm::Unit)
                }
            },
            b'0'..=b'9' => self.number(),
            b'\'' => {
                self.i += 1;
                let t = self.text()?;
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(Norm::Char(c)),
                    _ => Err(format!("not one char: {t:?}")),
                }
            }
            b'*' => {
                self.i += 1;
                let t = self.token()?.to_owned();
                Ok(Norm::Bytes(Self::unescape(&t)?))
            }
            b'.' => {
                self.i += 1;
                let name = self.text()?;
                if self.peek() == Some(b'(') {
                    self.i += 1;
                    Ok(Norm::Variant(name, self.items(b')', Self::field)?))
                } else {
                    Ok(Norm::UnitVariant(name))
                }
            }
            b'[' => {
                self.i += 1;
                Ok(Norm::Seq(self.items(b']', Self::value)?))
            }
            b'(' => {
                self.i += 1;
                Ok(Norm::Record(self.items(b')', Self::field)?))
            }
            b'{' => {
                self.i += 1;
                let mut entries = self.items(b'}', |p| {
                    let k = p.value()?;
                    p.eat(b'=')?;
                    Ok((k, p.value()?))
                })?;
                entries.sort();
                Ok(Norm::Map(entries))
            }
            _ => {
                let t = self.token()?.to_owned();
                match t.as_str() {
                    "true" => Ok(Norm::Bool(true)),
                    "false" => Ok(Norm::Bool(false)),
                    "inf" => Ok(Norm::Float(f64::INFINITY.to_bits())),
                    _ if t.starts_with("nan") => {
                        let bits: u64 = t[3..].parse().map_err(|e| format!("{t}: {e}"))?;
                        Ok(match u32::try_from(bits) {
                            Ok(b) => Norm::Nan32(b),
                            Err(_) => Norm::Nan64(bits),
                        })
                    }
                    _ => {
                        let first = t.as_bytes()[0];
                        if !(first.is_ascii_alphabetic() || first == b'_' || first == b'%')
                            && t != "\"\""
                        {
                            return Err(format!("not a string: {t}"));
                        }
                        Ok(Norm::Str(
                            String::from_utf8(Self::unescape(&t)?).map_err(|e| e.to_string())?,
                        ))
                    }
                }
            }
        }
    }
}

const NAMES: &[Name] = &["A", "B", "Admin", "", "true", "x y", "5", "é", "nan"];

fn name() -> impl Strategy<Value = Name> {
    prop::sample::select(NAMES)
}

/// Strings heavy in separators, escapes, markers and words that read like
/// other values.
fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a5 ~+!*'\"%,=()\\[\\]{}:#.é_-]{0,4}",
        1 => prop::sample::select(&["true", "false", "inf", "nan", "nan1", "Admin", "-", "~", "+~", "-1"][..])
            .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn small<T: std::fmt::Debug + Clone + 'static>(
    few: impl Strategy<Value = T> + 'static,
    all: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![3 => few, 1 => all].boxed()
}

fn float64() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            0.5,
            5.0,
            0.1,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001),
            f64::MAX,
            f64::MIN_POSITIVE,
        ]),
        any::<f64>(),
        any::<u64>().prop_map(f64::from_bits),
    ]
}

fn float32() -> impl Strategy<Value = f32> {
    prop_oneof![
        prop::sample::select(vec![
            0.0f32,
            -0.0,
            1.0,
            0.5,
            0.1,
            f32::INFINITY,
            f32::NAN,
            f32::from_bits(0x7f80_0001)
        ]),
        any::<u32>().prop_map(f32::from_bits),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        small(-2i8..3, any::<i8>()).prop_map(Value::I8),
        small(-2i16..3, any::<i16>()).prop_map(Value::I16),
        small(-2i32..3, any::<i32>()).prop_map(Value::I32),
        small(-2i64..3, any::<i64>()).prop_map(Value::I64),
        small(-2i128..3, any::<i128>()).prop_map(Value::I128),
        small(0u8..3, any::<u8>()).prop_map(Value::U8),
        small(0u16..3, any::<u16>()).prop_map(Value::U16),
        small(0u32..3, any::<u32>()).prop_map(Value::U32),
        small(0u64..3, any::<u64>()).prop_map(Value::U64),
        small(0u128..3, any::<u128>()).prop_map(Value::U128),
        float32().prop_map(Value::F32),
        float64().prop_map(Value::F64),
        small(
            prop::sample::select(&['a', '5', ' ', '~', 'é', '+', '"'][..]),
            any::<char>()
        )
        .prop_map(Value::Char),
        string().prop_map(Value::Str),
        prop_oneof![
            string().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..4)
        ]
        .prop_map(Value::Bytes),
        Just(Value::None),
        Just(Value::Unit),
        name().prop_map(Value::UnitStruct),
        (name(), 0u32..3, name()).prop_map(|(n, i, v)| Value::UnitVariant(n, i, v)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 4, |inner| {
        let fields = prop::collection::vec(
            (
                prop::sample::select(&["a", "b", "x"][..]),
                prop::option::weighted(0.8, inner.clone()),
            ),
            0..4,
        );
        prop_oneof![
            3 => inner.clone().prop_map(|v| Value::Some(Box::new(v))),
            2 => (name(), inner.clone()).prop_map(|(n, v)| Value::NewtypeStruct(n, Box::new(v))),
            1 => (name(), 0u32..3, name(), inner.clone())
                .prop_map(|(n, i, var, v)| Value::NewtypeVariant(n, i, var, Box::new(v))),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Tuple),
            1 => (name(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(n, v)| Value::TupleStruct(n, v)),
            1 => (name(), 0u32..3, name(), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(n, i, var, v)| Value::TupleVariant(n, i, var, v)),
            1 => prop::collection::vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            1 => (name(), fields.clone()).prop_map(|(n, f)| Value::Struct(n, f)),
            1 => (name(), 0u32..3, name(), fields)
                .prop_map(|(n, i, var, f)| Value::StructVariant(n, i, var, f)),
        ]
    })
}

const HEAD: &str = "m.f:v1";

fn key_of(v: &Value) -> Key {
    let mut kb = KeyBuilder::new(HEAD);
    kb.part(v);
    kb.into_key().expect("every tree has a key")
}

/// Every key of the run, with the normal form it was made from.
static SEEN: Mutex<Option<HashMap<String, Norm>>> = Mutex::new(None);
static SEEN_STORED: Mutex<Option<HashMap<String, Norm>>> = Mutex::new(None);

thread_local! {
    /// A cache to ask for stored keys (`prefix:text`).
    static STORED: cachefn::Cache = cachefn::Cache::memory();
}

/// The checks one tree must pass, and its key for comparisons.
fn check_tree(v: &Value) -> Result<Key, TestCaseError> {
    let n = normal(v);
    let text = KeyBuilder::arg_text(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let parsed = Parser::parse(&text);
    prop_assert_eq!(parsed.as_ref(), Ok(&n), "{:?} -> {}", v, text);
    prop_assert!(text
        .bytes()
        .all(|c| (0x21..=0x7e).contains(&c) && c != b'#' && c != b':'));

    let key = key_of(v);
    // The key keeps the whole text; what it is stored under is bounded: the
    // text itself when short, else its start and the digest of all of it.
    prop_assert_eq!(key.as_str(), format!("{HEAD}:{text}"));
    let stored = STORED.with(|c| c.storage_key(&key));
    prop_assert!(stored.len() <= "cachefn:".len() + cachefn::MAX_KEY_LEN);
    let whole = Key::new(format!("{HEAD}:{text}"));
    prop_assert_eq!(&key, &whole);
    prop_assert_eq!(key.fingerprint(), whole.fingerprint());

    let mut seen = SEEN.lock();
    let seen = seen.get_or_insert_with(HashMap::new);
    if let Some(prev) = seen.get(key.as_str()) {
        prop_assert_eq!(prev, &n, "two trees share {}", key);
    } else {
        seen.insert(key.as_str().to_owned(), n.clone());
    }
    let mut seen = SEEN_STORED.lock();
    let seen = seen.get_or_insert_with(HashMap::new);
    if let Some(prev) = seen.get(&stored) {
        prop_assert_eq!(prev, &n, "two trees share the stored key {}", stored);
    } else {
        seen.insert(stored, n);
    }
    Ok(key)
}

/// A tiny deterministic generator for the rewrites.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, in_n: u64) -> bool {
        self.next().is_multiple_of(in_n)
    }
    fn name(&mut self) -> Name {
        NAMES[(self.next() % NAMES.len() as u64) as usize]
    }
}

/// An integer of another width with the same value, if one holds it.
fn other_width(n: Norm, r: &mut Rng) -> Option<Value> {
    let Norm::Int(neg, m) = n else { return None };
    let signed = |v: i128| -> Vec<Value> {
        let mut out = vec![Value::I128(v)];
        out.extend(i8::try_from(v).ok().map(Value::I8));
        out.extend(i16::try_from(v).ok().map(Value::I16));
        out.extend(i32::try_from(v).ok().map(Value::I32));
        out.extend(i64::try_from(v).ok().map(Value::I64));
        out
    };
    let mut all = Vec::new();
    if neg {
        if m <= i128::MAX as u128 + 1 {
            all = signed((m as i128).wrapping_neg());
        }
    } else {
        all.push(Value::U128(m));
        all.extend(u8::try_from(m).ok().map(Value::U8));
        all.extend(u16::try_from(m).ok().map(Value::U16));
        all.extend(u32::try_from(m).ok().map(Value::U32));
        all.extend(u64::try_from(m).ok().map(Value::U64));
        if let Ok(v) = i128::try_from(m) {
            all.extend(signed(v));
        }
    }
    if all.is_empty() {
        return None;
    }
    let i = (r.next() % all.len() as u64) as usize;
    Some(all.swap_remove(i))
}

/// A tree with the same meaning: other widths and names, newtypes around
/// values, `Some` added or taken away where the rule allows, maps
/// shuffled. `under_some`: the nearest enclosing non-newtype is a `Some`.
fn rewrite(v: &Value, r: &mut Rng, under_some: bool) -> Value {
    let go = |v: &Value, r: &mut Rng| rewrite(v, r, false);
    let fields = |fs: &Fields, r: &mut Rng| -> Fields {
        fs.iter()
            .map(|(_, v)| (r.name(), v.as_ref().map(|v| go(v, r))))
            .collect()
    };
    let out = match v {
        Value::F32(f) if !f.is_nan() && r.chance(2) => Value::F64(*f as f64),
        Value::F64(f) if !f.is_nan() && (*f as f32) as f64 == *f && r.chance(2) => {
            Value::F32(*f as f32)
        }
        Value::Unit | Value::UnitStruct(_) => match r.chance(2) {
            true => Value::Unit,
            false => Value::UnitStruct(r.name()),
        },
        Value::UnitVariant(_, _, var) => Value::UnitVariant(r.name(), r.next() as u32, var),
        Value::Some(inner) => match strip(inner) {
            Value::None | Value::Some(_) => Value::Some(Box::new(rewrite(inner, r, true))),
            _ if !under_some && r.chance(2) => rewrite(inner, r, false),
            _ => Value::Some(Box::new(rewrite(inner, r, true))),
        },
        Value::NewtypeStruct(_, inner) => {
            Value::NewtypeStruct(r.name(), Box::new(rewrite(inner, r, under_some)))
        }
        Value::NewtypeVariant(_, _, var, inner) => {
            let inner = go(inner, r);
            match r.next() % 3 {
                0 => Value::NewtypeVariant(r.name(), r.next() as u32, var, Box::new(inner)),
                1 => Value::TupleVariant(r.name(), r.next() as u32, var, vec![inner]),
                _ => Value::StructVariant(r.name(), 0, var, vec![(r.name(), Some(inner))]),
            }
        }
        Value::Seq(items) => Value::Seq(items.iter().map(|v| go(v, r)).collect()),
        Value::Tuple(items) | Value::TupleStruct(_, items) => {
            let items: Vec<Value> = items.iter().map(|v| go(v, r)).collect();
            match r.next() % 3 {
                0 => Value::Tuple(items),
                1 => Value::TupleStruct(r.name(), items),
                _ => Value::Struct(
                    r.name(),
                    items.into_iter().map(|v| (r.name(), Some(v))).collect(),
                ),
            }
        }
        Value::TupleVariant(_, _, var, items) => Value::TupleVariant(
            r.name(),
            r.next() as u32,
            var,
            items.iter().map(|v| go(v, r)).collect(),
        ),
        Value::Map(entries) => {
            let mut e: Vec<_> = entries.iter().map(|(k, v)| (go(k, r), go(v, r))).collect();
            for i in (1..e.len()).rev() {
                e.swap(i, (r.next() % (i as u64 + 1)) as usize);
            }
            Value::Map(e)
        }
        Value::Struct(_, fs) => Value::Struct(r.name(), fields(fs, r)),
        Value::StructVariant(_, _, var, fs) => {
            Value::StructVariant(r.name(), r.next() as u32, var, fields(fs, r))
        }
        other => other_width(normal(other), r).unwrap_or_else(|| other.clone()),
    };
    // Wrap in a newtype now and then; in a `Some` where that means nothing.
    let out = if r.chance(4) {
        Value::NewtypeStruct(r.name(), Box::new(out))
    } else {
        out
    };
    match strip(&out) {
        Value::None | Value::Some(_) => out,
        _ if !under_some && r.chance(5) => Value::Some(Box::new(out)),
        _ => out,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Two trees share a key (and a fingerprint) exactly when they mean the
    /// same value; each key's whole text reads back to its tree.
    #[test]
    fn distinct_trees_never_share_a_key(a in value(), b in value()) {
        let (ka, kb) = (check_tree(&a)?, check_tree(&b)?);
        let same = normal(&a) == normal(&b);
        prop_assert_eq!(ka == kb, same, "{:?} / {:?} -> {} / {}", a, b, ka, kb);
        prop_assert_eq!(ka.fingerprint() == kb.fingerprint(), same);
    }

    /// Rewrites that keep the meaning keep the key.
    #[test]
    fn equal_values_share_a_key(a in value(), seed in 1u64..) {
        let b = rewrite(&a, &mut Rng(seed), false);
        prop_assert_eq!(normal(&a), normal(&b), "the rewrite changed the meaning: {:?} / {:?}", a, b);
        let (ka, kb) = (check_tree(&a)?, check_tree(&b)?);
        prop_assert_eq!(&ka, &kb, "{:?} / {:?}", a, b);
    }
}

/// The corners the generator must reach, written out: each pair differs.
#[test]
fn corners_stay_apart() {
    let b = |v: Value| Box::new(v);
    let pairs = [
        (
            Value::Some(b(Value::NewtypeStruct("W", b(Value::None)))),
            Value::None,
        ),
        (
            Value::UnitVariant("Kind", 0, "Admin"),
            Value::Str("Admin".into()),
        ),
        (Value::Char('a'), Value::Str("a".into())),
        (Value::Bytes(b"ab".to_vec()), Value::Str("ab".into())),
        (Value::Bytes(vec![1]), Value::Seq(vec![Value::U8(1)])),
        (Value::F64(5.0), Value::I64(5)),
        (Value::F64(-0.0), Value::F64(0.0)),
        (Value::F32(f32::NAN), Value::F64(f64::NAN)),
        (Value::Unit, Value::None),
        (Value::Unit, Value::Str(String::new())),
        (
            Value::Seq(vec![Value::U8(1)]),
            Value::Tuple(vec![Value::U8(1)]),
        ),
        (
            Value::UnitVariant("K", 0, "A"),
            Value::TupleVariant("K", 0, "A", vec![]),
        ),
        (
            Value::Struct("S", vec![("a", None)]),
            Value::Struct("S", vec![("a", Some(Value::Unit))]),
        ),
        (
            Value::Some(b(Value::Some(b(Value::U8(5))))),
            Value::Some(b(Value::U8(5))),
        ),
    ];
    for (x, y) in &pairs {
        assert_ne!(normal(x), normal(y), "{x:?} / {y:?}");
        assert_ne!(key_of(x), key_of(y), "{x:?} / {y:?}");
        for v in [x, y] {
            let text = KeyBuilder::arg_text(v).unwrap();
            assert_eq!(Parser::parse(&text), Ok(normal(v)), "{text}");
        }
    }
}
