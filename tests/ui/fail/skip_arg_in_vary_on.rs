// The refresh flag cannot also be part of the key.
#[cachefn::quickcache(skip_arg = "force", vary_on = ["id", "force"])]
fn lookup(id: u64, force: bool) -> u64 {
    let _ = force;
    id
}

fn main() {}
