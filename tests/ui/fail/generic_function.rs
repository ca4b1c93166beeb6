// A generic function has no single key or value type.
#[cachefn::quickcache]
fn describe<T: serde::Serialize>(value: T) -> String {
    let _ = value;
    String::new()
}

fn main() {}
