// A `const fn` cannot use a cache.
#[cachefn::quickcache]
const fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
