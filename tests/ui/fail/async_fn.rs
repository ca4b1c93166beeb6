// `async fn` is not supported yet.
#[cachefn::quickcache]
async fn fetch(id: u64) -> u64 {
    id
}

fn main() {}
