// `vary_on` on a function that takes no parameter at all.
#[cachefn::quickcache(vary_on = "id")]
fn now() -> u64 {
    42
}

fn main() {}
