// The macro sees only the syntax of the return type: an alias of `Option`
// is not recognised as one, so `cache_none` is rejected.
pub type Maybe = Option<u64>;

#[cachefn::quickcache(cache_none = false)]
fn find(id: u64) -> Maybe {
    Some(id)
}

fn main() {}
