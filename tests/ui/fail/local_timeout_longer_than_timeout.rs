// The local tier cannot keep an entry longer than the shared one.
#[cachefn::quickcache(timeout = 10, local_timeout = 60)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
