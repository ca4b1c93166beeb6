// `vary_on` must start with a parameter name.
#[cachefn::quickcache(vary_on = "user.id")]
fn profile(user_id: u64, page: u32) -> String {
    format!("{user_id}:{page}")
}

fn main() {}
