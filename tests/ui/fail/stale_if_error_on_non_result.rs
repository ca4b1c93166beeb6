// `stale_if_error` serves an old value when the body returns `Err`: only
// `Result` functions have one.
#[cachefn::quickcache(timeout = 60, stale_if_error = 600)]
fn price(item: u64) -> u64 {
    item
}

fn main() {}
