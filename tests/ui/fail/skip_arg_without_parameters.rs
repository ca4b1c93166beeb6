// `skip_arg` on a function that takes no parameter at all.
#[cachefn::quickcache(skip_arg = "force")]
fn now() -> u64 {
    42
}

fn main() {}
