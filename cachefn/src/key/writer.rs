//! The key writer (before the fix: moved only).

use std::fmt;

use serde::ser::{self, Serialize};

use super::scheme::{escape_arg, Sink};

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
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::super::KeyBuilder;

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
}
