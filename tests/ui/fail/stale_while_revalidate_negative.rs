// A negative duration is a compile error at the token.
#[cachefn::quickcache(stale_while_revalidate = -30)]
fn price(item: u64) -> u64 {
    item
}

fn main() {}
