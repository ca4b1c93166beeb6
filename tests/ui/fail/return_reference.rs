// Cached values are owned: a reference cannot be cached.
#[cachefn::quickcache]
fn label(id: u64) -> &'static str {
    if id == 0 {
        "zero"
    } else {
        "other"
    }
}

fn main() {}
