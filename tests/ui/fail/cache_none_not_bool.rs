// `cache_none` takes a bool literal.
#[cachefn::quickcache(cache_none = "no")]
fn find(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {}
