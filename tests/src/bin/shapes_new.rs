//! "The next deploy": the types of `shapes_old`, each changed as its case
//! says (same Rust and serde names). See `tests/tests/value_shapes.rs`.

#[path = "../shape_driver.rs"]
mod driver;

use driver::Sample;

/// Unchanged: the same definitions as in `shapes_old`.
mod same {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Point {
        pub x: i32,
        pub y: i32,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum Color {
        Red,
        Green,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Everything {
        pub id: u64,
        pub tags: std::collections::BTreeMap<String, Vec<Option<i16>>>,
        pub color: Color,
        pub list: List,
        pub pair: (char, [u8; 3]),
        pub unit: (),
        pub wrapped: Wrapped,
        pub bytes: Vec<u8>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub enum List {
        Cons(u8, Box<List>),
        Nil,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub struct Wrapped(pub f64);
}

macro_rules! changed {
    ($($case:ident { $($item:item)* })*) => {$(
        #[allow(dead_code)]
        mod $case {
            use serde::{Deserialize, Serialize};
            $(#[derive(Debug, Serialize, Deserialize)] $item)*
        }
    )*};
}

changed! {
    reordered { pub struct Point { y: i32, x: i32 } }
    renamed { pub struct Point { x: i32, z: i32 } }
    added { pub struct Point { x: i32, y: i32, z: Option<i32> } }
    removed { pub struct Shrinks { x: i32, y: i32 } }
    type_changed { pub struct Point { x: u32, y: i32 } }
    variants_reordered { pub enum Color { Green, Red } }
    variant_added { pub enum Color { Red, Green, Blue } }
    variant_renamed { pub enum Color { Red, Lime } }
    nested_reordered {
        pub struct Inner { b: u8, a: u8 }
        pub struct Outer { label: String, inner: Option<Vec<Inner>> }
    }
}

// This build never writes: it only reads what `shapes_old` wrote.
macro_rules! unwritten {
    ($($t:ty),*) => {$(impl Sample for $t { fn sample() -> Self { unreachable!("shapes_new only reads") } })*};
}
unwritten!(
    same::Point,
    same::Everything,
    reordered::Point,
    renamed::Point,
    added::Point,
    removed::Shrinks,
    type_changed::Point,
    variants_reordered::Color,
    variant_added::Color,
    variant_renamed::Color,
    nested_reordered::Outer
);

fn dispatch(action: &str, case: &str, cache: &cachefn::Cache) {
    use driver::act;
    match case {
        "unchanged" => act::<same::Point>(action, case, cache),
        "unchanged_everything" => act::<same::Everything>(action, case, cache),
        "reordered" => act::<reordered::Point>(action, case, cache),
        "renamed" => act::<renamed::Point>(action, case, cache),
        "added" => act::<added::Point>(action, case, cache),
        "removed" => act::<removed::Shrinks>(action, case, cache),
        "type_changed" => act::<type_changed::Point>(action, case, cache),
        "variants_reordered" => act::<variants_reordered::Color>(action, case, cache),
        "variant_added" => act::<variant_added::Color>(action, case, cache),
        "variant_renamed" => act::<variant_renamed::Color>(action, case, cache),
        "nested_reordered" => act::<nested_reordered::Outer>(action, case, cache),
        _ => panic!("unknown case {case}"),
    }
}

fn main() {
    driver::main(dispatch)
}
