// `early_refresh` is XFetch's beta: not negative.
#[cachefn::quickcache(early_refresh = -1)]
fn price(item: u64) -> u64 {
    item
}

fn main() {}
