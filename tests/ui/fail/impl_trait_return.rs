// An `impl Trait` return value has no nameable type to cache.
#[cachefn::quickcache]
fn numbers(n: u32) -> impl Clone {
    n
}

fn main() {}
