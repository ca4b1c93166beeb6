// `cache` names a registered cache; the empty name is never one.
#[cachefn::quickcache(cache = "")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
