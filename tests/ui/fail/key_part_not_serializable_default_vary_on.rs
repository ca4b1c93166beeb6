// Without `vary_on`, every parameter is part of the key and must be
// serializable; the error points at the parameter.
pub struct User {
    pub id: u64,
}

#[cachefn::quickcache]
fn greet(user: &User) -> String {
    format!("hi {}", user.id)
}

fn main() {}
