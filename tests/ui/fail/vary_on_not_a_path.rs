// `vary_on` takes paths, not arbitrary expressions.
#[cachefn::quickcache(vary_on = "a + b")]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

fn main() {}
