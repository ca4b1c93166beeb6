// A timeout that does not fit in a u64.
#[cachefn::quickcache(timeout = 100000000000000000000)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
