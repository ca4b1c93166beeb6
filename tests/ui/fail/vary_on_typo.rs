// A misspelled parameter in a `vary_on` path: the suggestion is a literal
// that can be pasted over the one marked.
pub struct User {
    pub id: u64,
}

#[cachefn::quickcache(vary_on = ["usr.id", "pgae"])]
fn profile(user: &User, page: u32) -> String {
    format!("{}:{page}", user.id)
}

fn main() {}
