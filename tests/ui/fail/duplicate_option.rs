// The same option twice: the error points at the second one.
#[cachefn::quickcache(timeout = 60, timeout = 120)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
