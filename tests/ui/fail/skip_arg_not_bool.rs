// `skip_arg` must name a `bool` parameter.
#[cachefn::quickcache(skip_arg = "force")]
fn lookup(id: u64, force: u8) -> u64 {
    let _ = force;
    id
}

fn main() {}
