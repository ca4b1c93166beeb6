// `none_timeout` cannot be negative.
#[cachefn::quickcache(none_timeout = -1)]
fn find(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

fn main() {}
