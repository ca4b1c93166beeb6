// `none_timeout` applies to functions that return `Option<T>` only.
#[cachefn::quickcache(none_timeout = 10)]
fn title(id: u64) -> String {
    id.to_string()
}

fn main() {}
