// Options are written `name = value`.
#[cachefn::quickcache(timeout)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
