// Each entry of a `vary_on` list is a string literal.
#[cachefn::quickcache(vary_on = ["a", b])]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
