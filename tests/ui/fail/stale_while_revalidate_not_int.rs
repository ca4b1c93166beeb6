// `stale_while_revalidate` takes whole seconds, not a string.
#[cachefn::quickcache(stale_while_revalidate = "30s")]
fn price(item: u64) -> u64 {
    item
}

fn main() {}
