// A misspelled field in a `vary_on` path: one error, at the path, naming
// the field and the type, with a literal that can be pasted over it.
pub struct User {
    pub id: u64,
    pub name: String,
}

#[cachefn::quickcache(vary_on = "user.idd")]
fn profile(user: &User) -> String {
    format!("{}:{}", user.id, user.name)
}

fn main() {}
