// `single_flight` is "process" or "shared".
#[cachefn::quickcache(single_flight = "everywhere")]
fn price(item: u64) -> u64 {
    item
}

fn main() {}
