// `self.x` in `vary_on` needs a method with a `self` parameter.
#[cachefn::quickcache(vary_on = "self.id")]
fn lookup(id: u64) -> u64 {
    id
}

fn main() {}
