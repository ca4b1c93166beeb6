//! The key writer: a serde `Serializer` that writes one argument as readable
//! key text (see the table in the [module docs](super)).
//!
//! # Which values share a key
//!
//! The text is a function of the calls a value's `Serialize` makes on the
//! writer, and the writer is injective over the whole serde data model
//! except for what it leaves out on purpose, so that common keys stay
//! short and readable:
//!
//! 1. **Integer widths.** An integer is its decimal value: `5u8`, `5i64` and
//!    `5u128` are all `5`.
//! 2. **Float widths.** A float is its value, an `f32` widened exactly to
//!    `f64`: `0.5f32` and `0.5f64` are both `0.5`. `-0.0` (`-0.0`) and
//!    `0.0` (`0.0`) differ, and so does every NaN: `nan` and its bits, whose
//!    ranges for `f32` and `f64` do not overlap.
//! 3. **Names.** Type names, field names and variant indices are not
//!    written: a newtype struct is its content (`UserId(5)` is `5`), a unit
//!    struct is `-` like `()`, tuples, tuple structs and structs are all
//!    `(a,b)` (a field that `skip_serializing_if` leaves out is `!`, so
//!    fields keep their places), and newtype, tuple and struct variants are
//!    all `.Name(a,b)`. Variant names are written: they tell the values of
//!    an enum apart.
//! 4. **`Some`.** `Some(x)` is the text of `x`, unless `x` is an option
//!    itself (newtype structs in between count as nothing): `Some(5)` is `5`,
//!    `None` is `~`, `Some(None)` and `Some(W(None))` are `+~`,
//!    `Some(Some(5))` is `+5`.
//! 5. **Map order.** A map is the multiset of its entries: they are written
//!    sorted, so a `HashMap`'s iteration order does not change the key.
//!
//! Everything else is kept apart by the text itself: integers, floats,
//! strings and bools (`5`, `5.0`, `%35`, `true`, `%74rue`), a char and a
//! string (`'a` and `a`), bytes, a string and a sequence (`*ab`, `ab` and
//! `[97,98]`), a unit variant and a string (`.Admin` and `Admin`), `None`,
//! `()` and `""` (`~`, `-`, `""`), a sequence and a tuple (`[a]`, `(a)`).
//! The text can be parsed back into the data model modulo the five points
//! above (the `key_model` test does, for arbitrary trees).
//!
//! So two different values of one Rust type share a key only if its
//! `Serialize` makes calls that differ in nothing but those five points for
//! them. A derived impl does that only for a `#[serde(untagged)]` enum whose
//! variants look alike (`A(u32)` and `B(u64)`, or two struct variants with
//! the same field types in the same order): use the default, tagged
//! representation for enums in keys, or give the variants different shapes.

use std::fmt;

use serde::ser::{self, Serialize};

use super::scheme::{escape_arg, escape_into, Sink};

/// Write `value` as one argument's key text.
#[inline]
pub(crate) fn write<T: Serialize + ?Sized, S: Sink + ?Sized>(
    value: &T,
    out: &mut S,
) -> Result<(), KeyError> {
    value.serialize(&mut KeySerializer {
        out,
        some_pending: false,
    })
}

/// Why a value could not be written: its `Serialize` failed, or called the
/// writer out of order.
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
    /// Set while serializing the inside of a `Some` and nothing has been
    /// written yet, so that an option inside it (through any newtype
    /// structs) marks itself with `+`: `Some(None)` differs from `None`.
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
    #[inline]
    fn int(&mut self, v: impl itoa::Integer) -> Result<(), KeyError> {
        let mut b = itoa::Buffer::new();
        self.raw(b.format(v).as_bytes())
    }
    fn text(&mut self, bytes: &[u8]) -> Result<(), KeyError> {
        self.some_pending = false;
        escape_arg(bytes, self.out);
        Ok(())
    }
    /// A marker, then escaped bytes (`""` if there are none).
    fn marked(&mut self, marker: &[u8], bytes: &[u8]) -> Result<(), KeyError> {
        self.raw(marker)?;
        escape_into(bytes, self.out);
        Ok(())
    }
    fn float(&mut self, v: f64, bits: u64) -> Result<(), KeyError> {
        if v.is_nan() {
            let mut b = itoa::Buffer::new();
            self.raw(b"nan")?;
            return self.raw(b.format(bits).as_bytes());
        }
        // Display is the shortest text that reads back as the same `f64`,
        // never in exponent form.
        let mut s = String::new();
        fmt::Write::write_fmt(&mut s, format_args!("{v}")).map_err(ser::Error::custom)?;
        // Always look like a float (`5.0`, not `5`), so it never reads as an integer.
        if !s.contains(['.', 'e', 'i']) {
            s.push_str(".0");
        }
        self.raw(s.as_bytes())
    }
    fn open(&mut self, bytes: &[u8], close: &'static [u8]) -> Compound<'_, S> {
        self.some_pending = false;
        self.out.push(bytes);
        Compound {
            ser: KeySerializer {
                out: self.out,
                some_pending: false,
            },
            first: true,
            close,
            entries: None,
            awaiting_value: false,
        }
    }
    /// `.Name(`: a variant with fields.
    fn open_variant(&mut self, variant: &str) -> Compound<'_, S> {
        self.some_pending = false;
        self.out.push(b".");
        escape_into(variant.as_bytes(), self.out);
        self.open(b"(", b")")
    }
}

pub(crate) struct Compound<'a, S: Sink + ?Sized> {
    ser: KeySerializer<'a, S>,
    first: bool,
    close: &'static [u8],
    /// Map entries, written sorted at the end so that iteration order does
    /// not change the key.
    entries: Option<Vec<Vec<u8>>>,
    /// A map key was written and its value not yet.
    awaiting_value: bool,
}

impl<S: Sink + ?Sized> Compound<'_, S> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.ser.out.push(b",");
        }
    }
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        self.comma();
        self.ser.some_pending = false;
        value.serialize(&mut self.ser)
    }
    fn skipped(&mut self) -> Result<(), KeyError> {
        self.comma();
        self.ser.out.push(b"!");
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        if self.awaiting_value {
            return Err(ser::Error::custom(
                "a map key without a value: its Serialize impl must call serialize_value after serialize_key",
            ));
        }
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
    /// `'c`: a char never reads as a one-letter string.
    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.marked(b"'", v.encode_utf8(&mut [0; 4]).as_bytes())
    }
    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.text(v.as_bytes())
    }
    /// `*bytes`: never reads as a string or a sequence.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.marked(b"*", v)
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
    /// `.Name`: a unit variant never reads as a string.
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.marked(b".", variant.as_bytes())
    }
    /// Transparent, and so is it to an enclosing `Some`: `Some(W(None))`
    /// is `+~`, as `Some(None)` is.
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        let mut c = self.open_variant(variant);
        c.element(value)?;
        c.end()
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, KeyError> {
        Ok(self.open(b"[", b"]"))
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, KeyError> {
        Ok(self.open(b"(", b")"))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, KeyError> {
        Ok(self.open(b"(", b")"))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, KeyError> {
        Ok(self.open_variant(variant))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, KeyError> {
        let mut c = self.open(b"{", b"}");
        c.entries = Some(Vec::new());
        Ok(c)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, KeyError> {
        Ok(self.open(b"(", b")"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, KeyError> {
        Ok(self.open_variant(variant))
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

macro_rules! fields {
    ($($tr:ident),*) => {$(
        impl<S: Sink + ?Sized> ser::$tr for Compound<'_, S> {
            type Ok = ();
            type Error = KeyError;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<(), KeyError> {
                self.element(value)
            }
            /// A field left out by `skip_serializing_if` still takes its
            /// place, as `!`, so that fields keep their positions.
            fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
                self.skipped()
            }
            fn end(self) -> Result<(), KeyError> {
                Compound::end(self)
            }
        }
    )*};
}
fields!(SerializeStruct, SerializeStructVariant);

impl<S: Sink + ?Sized> ser::SerializeMap for Compound<'_, S> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        if self.awaiting_value {
            return Err(ser::Error::custom(
                "two map keys in a row: its Serialize impl must call serialize_value after each serialize_key",
            ));
        }
        let mut entry = Vec::new();
        write(key, &mut entry)?;
        entry.push(b'=');
        self.entries.get_or_insert_with(Vec::new).push(entry);
        self.awaiting_value = true;
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let entry =
            match self.entries.as_mut().and_then(|e| e.last_mut()) {
                Some(entry) if self.awaiting_value => entry,
                _ => return Err(ser::Error::custom(
                    "a map value without a key: its Serialize impl must call serialize_key first",
                )),
            };
        self.awaiting_value = false;
        write(value, entry)
    }
    fn end(self) -> Result<(), KeyError> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap, HashSet};

    use serde::Serialize;

    use super::super::KeyBuilder;

    fn key_of<T: Serialize + ?Sized>(v: &T) -> String {
        let mut kb = KeyBuilder::new("f:v1");
        kb.part(v);
        kb.into_key().unwrap().as_str().to_owned()
    }

    fn arg<T: Serialize + ?Sized>(v: &T) -> String {
        KeyBuilder::arg_text(v).unwrap()
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

    #[derive(Serialize)]
    struct W(Option<u8>);

    #[derive(Serialize)]
    enum Kind {
        Admin,
        Named(String),
        Pair(u8, u8),
        Rec { x: u8 },
    }

    #[test]
    fn every_shape_has_its_text() {
        assert_eq!(arg(&'a'), "'a");
        assert_eq!(arg(&' '), "'%20");
        assert_eq!(arg(&Kind::Admin), ".Admin");
        assert_eq!(arg(&Kind::Named("x".into())), ".Named(x)");
        assert_eq!(arg(&Kind::Pair(1, 2)), ".Pair(1,2)");
        assert_eq!(arg(&Kind::Rec { x: 3 }), ".Rec(3)");
        assert_eq!(arg(&()), "-");
        assert_eq!(arg(&Some(Some(5u8))), "+5");
        assert_eq!(arg(&Some(W(None))), "+~");
        assert_eq!(arg(&Some(W(Some(1)))), "+1");
        assert_eq!(arg(&W(Some(1))), "1");
        assert_eq!(arg(&-0.0f64), "-0.0");
        assert_eq!(arg(&0.5f32), "0.5");
        assert_eq!(arg(&f64::INFINITY), "inf");
        assert_eq!(arg(&f64::NEG_INFINITY), "-inf");
        assert_eq!(arg(&u128::MAX), u128::MAX.to_string());
        assert_eq!(arg(&i128::MIN), i128::MIN.to_string());
    }

    /// `Some(W(None))` is not `None`'s `~`, and a unit variant is not the
    /// string of its name.
    #[test]
    fn nested_options_and_unit_variants_stay_apart() {
        assert_ne!(arg(&Some(W(None))), arg(&None::<W>));

        #[derive(Serialize)]
        #[serde(untagged)]
        enum Who {
            Role(Kind),
            Name(String),
        }
        assert_ne!(
            arg(&Who::Role(Kind::Admin)),
            arg(&Who::Name("Admin".into()))
        );
        assert_ne!(arg(&'a'), arg("a"));
    }

    #[test]
    fn bytes_strings_and_sequences_stay_apart() {
        struct Bytes<'a>(&'a [u8]);
        impl Serialize for Bytes<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        let keys: HashSet<String> = [
            arg(&Bytes(b"ab")),
            arg("ab"),
            arg(&b"ab".to_vec()),
            arg(&Bytes(b"")),
            arg(""),
            arg(&Vec::<u8>::new()),
        ]
        .into();
        assert_eq!(keys.len(), 6, "{keys:?}");
        assert_eq!(arg(&Bytes(b"ab")), "*ab");
        assert_eq!(arg(&Bytes(b"")), "*\"\"");
    }

    #[test]
    fn skipped_fields_and_untagged_enums_stay_apart() {
        #[derive(Serialize)]
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

        #[derive(Serialize)]
        #[serde(untagged)]
        enum Id {
            Num(u32),
            Float(f64),
            Name(String),
            Flag(bool),
        }
        let keys: HashSet<String> = [
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
        let b: HashMap<_, _> = [(1, "a"), (2, "b")].into_iter().collect();
        assert_eq!(key_of(&a), key_of(&b));
        assert_eq!(key_of(&a), "f:v1:{1=a,2=b}");
    }

    #[test]
    fn a_map_out_of_order_is_an_error_not_a_key() {
        use serde::ser::SerializeMap;
        struct Bad(u8);
        impl Serialize for Bad {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                match self.0 {
                    0 => m.serialize_value(&1)?,
                    1 => {
                        m.serialize_key(&1)?;
                        m.serialize_key(&2)?;
                    }
                    _ => m.serialize_key(&1)?,
                }
                m.end()
            }
        }
        for i in 0..3 {
            let e = KeyBuilder::arg_text(&Bad(i)).unwrap_err().to_string();
            assert!(e.contains("serialize_"), "{e}");
        }
    }
}
