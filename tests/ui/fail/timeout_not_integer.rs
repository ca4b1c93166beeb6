// `timeout` takes a number of seconds, not a string.
#[cachefn::quickcache(timeout = "60")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
