// A `None` never lives longer than `timeout`.
#[cachefn::quickcache(timeout = 60, none_timeout = 600)]
fn find(id: u64) -> Option<String> {
    (id > 0).then(|| id.to_string())
}

fn main() {}
