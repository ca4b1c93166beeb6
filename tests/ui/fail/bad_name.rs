// `name` is written inside keys, so it is restricted to a safe alphabet.
#[cachefn::quickcache(name = "has space")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
