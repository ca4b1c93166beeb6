// A zero timeout would never keep anything.
#[cachefn::quickcache(timeout = 0)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
