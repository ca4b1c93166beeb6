// `none_timeout` takes whole seconds.
#[cachefn::quickcache(none_timeout = "10")]
fn find(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

fn main() {}
