// `none_timeout` and `cache_none = false` contradict each other.
#[cachefn::quickcache(cache_none = false, none_timeout = 10)]
fn find(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

fn main() {}
