//! An estimate of the heap memory a value owns, from its `Serialize` impl,
//! for the weight of an entry in a byte-bounded local tier
//! ([`Memory::with_max_bytes`](crate::backends::Memory::with_max_bytes)).
//!
//! The serialized size undercounts what a value occupies in memory: a
//! `Vec<String>` of a thousand one-byte strings serializes to about 2 KB but
//! occupies about 56 KB (a 24-byte `String` per element plus a heap block of
//! at least 32 bytes for each one's text). So the estimate walks the value
//! as serde sees it and adds, for every string, byte buffer, sequence and
//! map, the size of its heap block (elements at their in-memory sizes,
//! rounded up as the allocator does). The value's own inline size is not
//! part of it: the tier counts it from the type.
//!
//! What serde cannot see is not counted: spare capacity (a `Vec` with room
//! for more elements than it holds), memory behind a field that is skipped,
//! and values shared through `Rc`/`Arc` are counted once per reference.

use serde::ser::{self, Serialize};

/// The heap bytes `value` owns, estimated (see the module docs). A value
/// whose `Serialize` impl fails is weighed by what was seen up to the
/// failure.
pub(crate) fn heap_size<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut w = Weigher::default();
    let _ = value.serialize(&mut w);
    w.heap
}

/// The size of the heap block the system allocator hands out for `n` bytes:
/// a header word, rounded up to 16 bytes, at least 32 (glibc's and most
/// allocators' size classes are within this).
fn block(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n.saturating_add(8 + 15) & !15).max(32)
    }
}

/// In-memory sizes of a `String`/`Vec` header and of a map's per-entry
/// overhead (hash tables keep spare slots; B-trees keep partly full nodes).
const VEC_HEADER: usize = 24;
const MAP_SLACK_NUM: usize = 2;

/// Walks a value. `inline` is the in-memory size of the value just
/// serialized (how much it adds to its parent's buffer), `heap` the heap
/// bytes seen so far.
#[derive(Default)]
struct Weigher {
    inline: usize,
    heap: usize,
}

impl Weigher {
    fn leaf(&mut self, inline: usize) -> Result<(), Never> {
        self.inline = inline;
        Ok(())
    }

    fn buffer(&mut self, len: usize) -> Result<(), Never> {
        self.heap = self.heap.saturating_add(block(len));
        self.inline = VEC_HEADER;
        Ok(())
    }

    /// The inline size of one nested value, its heap added to ours.
    fn nested<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<usize, Never> {
        value.serialize(&mut *self)?;
        Ok(self.inline)
    }
}

/// The weigher never fails; a `Serialize` impl may (its error is kept only
/// to stop the walk).
#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the value could not be walked")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Never
    }
}

/// A sequence, tuple, struct or map being walked: the inline sizes of its
/// elements so far, and whether they live in a heap buffer of their own
/// (sequences, maps) or inline in the parent (tuples, structs).
struct Compound<'a> {
    w: &'a mut Weigher,
    elements: usize,
    boxed: bool,
    map: bool,
}

impl Compound<'_> {
    fn add<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        let inline = self.w.nested(value)?;
        self.elements = self.elements.saturating_add(inline);
        Ok(())
    }

    fn finish(self, tag: usize) -> Result<(), Never> {
        if self.boxed {
            let bytes = if self.map {
                self.elements.saturating_mul(MAP_SLACK_NUM)
            } else {
                self.elements
            };
            self.w.heap = self.w.heap.saturating_add(block(bytes));
            self.w.inline = if self.map { 48 } else { VEC_HEADER };
        } else {
            self.w.inline = self.elements.saturating_add(tag);
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(0)
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(0)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(0)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(8)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        self.add(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(0)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(0)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.add(value)
    }
    fn end(self) -> Result<(), Never> {
        self.finish(8)
    }
}

impl<'a> ser::Serializer for &'a mut Weigher {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, _: bool) -> Result<(), Never> {
        self.leaf(1)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Never> {
        self.leaf(1)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Never> {
        self.leaf(2)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Never> {
        self.leaf(4)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Never> {
        self.leaf(8)
    }
    fn serialize_i128(self, _: i128) -> Result<(), Never> {
        self.leaf(16)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Never> {
        self.leaf(1)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Never> {
        self.leaf(2)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Never> {
        self.leaf(4)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Never> {
        self.leaf(8)
    }
    fn serialize_u128(self, _: u128) -> Result<(), Never> {
        self.leaf(16)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        self.leaf(4)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        self.leaf(8)
    }
    fn serialize_char(self, _: char) -> Result<(), Never> {
        self.leaf(4)
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.buffer(v.len())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.buffer(v.len())
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.leaf(8)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        let inline = self.nested(value)?;
        self.leaf(inline.saturating_add(8))
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.leaf(0)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        self.leaf(0)
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        self.leaf(8)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        let inline = self.nested(value)?;
        self.leaf(inline.saturating_add(8))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Never> {
        Ok(self.compound(true, false))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false, false))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false, false))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false, false))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Never> {
        Ok(self.compound(true, true))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false, false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Never> {
        Ok(self.compound(false, false))
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), Never> {
        // Count the text without building it.
        struct Count(usize);
        impl std::fmt::Write for Count {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0 = self.0.saturating_add(s.len());
                Ok(())
            }
        }
        let mut count = Count(0);
        let _ = std::fmt::write(&mut count, format_args!("{value}"));
        self.buffer(count.0)
    }
    fn is_human_readable(&self) -> bool {
        false
    }
}

impl Weigher {
    fn compound(&mut self, boxed: bool, map: bool) -> Compound<'_> {
        Compound {
            w: self,
            elements: 0,
            boxed,
            map,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::heap_size;

    #[test]
    fn inline_values_own_no_heap() {
        assert_eq!(heap_size(&7u64), 0);
        assert_eq!(heap_size(&(1u8, 2.0f64, 'c')), 0);
        assert_eq!(heap_size(&None::<String>), 0);
        assert_eq!(heap_size(&String::new()), 0);
    }

    #[test]
    fn a_string_is_its_heap_block() {
        assert_eq!(heap_size(&"x".to_owned()), 32);
        let big = "x".repeat(32 * 1024);
        let h = heap_size(&big);
        assert!((32 * 1024..32 * 1024 + 64).contains(&h), "{h}");
    }

    #[test]
    fn many_small_strings_weigh_what_they_occupy() {
        let v: Vec<String> = (0..1000).map(|i| (i % 10).to_string()).collect();
        let serialized = postcard::experimental::serialized_size(&v).unwrap();
        let h = heap_size(&v);
        // 1,000 headers of 24 bytes in the vector's buffer, plus 1,000 blocks
        // of at least 32 bytes: 56 KB, where postcard counts 2 KB.
        assert!(h >= 1000 * (24 + 32), "{h}");
        assert!(h > 20 * serialized, "{h} vs {serialized}");
    }

    #[test]
    fn nested_and_maps() {
        #[derive(serde::Serialize)]
        struct Page {
            id: u64,
            tags: Vec<String>,
            meta: HashMap<String, u32>,
        }
        let page = Page {
            id: 1,
            tags: vec!["a".into(), "b".into()],
            meta: [("k".to_owned(), 1u32)].into_iter().collect(),
        };
        let h = heap_size(&page);
        // tags: a 48-byte buffer + two 32-byte blocks; meta: at least one
        // entry (24 + 4) with slack, and its key's block.
        assert!(h >= 48 + 64 + 56 + 32, "{h}");
    }

    #[test]
    fn a_failing_serialize_impl_is_no_panic() {
        struct Fails;
        impl serde::Serialize for Fails {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        assert_eq!(heap_size(&vec![Fails]), 0);
    }
}
