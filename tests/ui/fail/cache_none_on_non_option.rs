// `cache_none` only means something for `Option<T>` return types.
#[cachefn::quickcache(cache_none = false)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
