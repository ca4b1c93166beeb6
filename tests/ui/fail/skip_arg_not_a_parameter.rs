// `skip_arg` must name a parameter of the function.
#[cachefn::quickcache(skip_arg = "force")]
fn lookup(id: u64, refresh: bool) -> u64 {
    let _ = refresh;
    id
}

fn main() {}
