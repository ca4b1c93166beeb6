// `vary_on` paths are written as string literals.
#[cachefn::quickcache(vary_on = user.id)]
fn greet(user: u64) -> String {
    format!("hi {user}")
}

fn main() {}
