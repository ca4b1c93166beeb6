//! "The previous deploy": the types as first written. See `shape_driver.rs`
//! and `tests/tests/value_shapes.rs`; `shapes_new` has the changed types.

#[path = "../shape_driver.rs"]
mod driver;

use driver::Sample;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Point {
    x: i32,
    y: i32,
}

#[derive(Debug, Serialize, Deserialize)]
enum Color {
    Red,
    Green,
}

#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    a: u8,
    b: u8,
}

#[derive(Debug, Serialize, Deserialize)]
struct Outer {
    label: String,
    inner: Option<Vec<Inner>>,
}

/// Every kind of serde shape at once, unchanged between the builds.
#[derive(Debug, Serialize, Deserialize)]
struct Everything {
    id: u64,
    tags: std::collections::BTreeMap<String, Vec<Option<i16>>>,
    color: Color,
    list: List,
    pair: (char, [u8; 3]),
    unit: (),
    wrapped: Wrapped,
    bytes: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
enum List {
    Cons(u8, Box<List>),
    Nil,
}

#[derive(Debug, Serialize, Deserialize)]
struct Wrapped(f64);

#[derive(Debug, Serialize, Deserialize)]
struct Shrinks {
    x: i32,
    y: i32,
    z: i32,
}

macro_rules! sample {
    ($($t:ty => $v:expr;)*) => {$(impl Sample for $t { fn sample() -> Self { $v } })*};
}
sample! {
    Point => Point { x: 1, y: 2 };
    Color => Color::Red;
    Outer => Outer { label: "o".into(), inner: Some(vec![Inner { a: 1, b: 2 }]) };
    Everything => Everything {
        id: 7,
        tags: [("t".to_string(), vec![Some(-1), None])].into(),
        color: Color::Green,
        list: List::Cons(1, Box::new(List::Cons(2, Box::new(List::Nil)))),
        pair: ('c', [1, 2, 3]),
        unit: (),
        wrapped: Wrapped(0.5),
        bytes: vec![9, 9],
    };
    Shrinks => Shrinks { x: 1, y: 2, z: 3 };
}

fn dispatch(action: &str, case: &str, cache: &cachefn::Cache) {
    use driver::act;
    match case {
        // The same type in both builds.
        "unchanged" => act::<Point>(action, case, cache),
        "unchanged_everything" => act::<Everything>(action, case, cache),
        // `shapes_new` changes the type as the case's name says.
        "reordered" | "renamed" | "added" | "type_changed" => act::<Point>(action, case, cache),
        "removed" => act::<Shrinks>(action, case, cache),
        "variants_reordered" | "variant_added" | "variant_renamed" => {
            act::<Color>(action, case, cache)
        }
        "nested_reordered" => act::<Outer>(action, case, cache),
        _ => panic!("unknown case {case}"),
    }
}

fn main() {
    driver::main(dispatch)
}
