// An argument named by `vary_on` must be serializable to be part of the key.
pub struct User {
    pub id: u64,
}

#[cachefn::quickcache(vary_on = "user")]
fn greet(user: &User) -> String {
    format!("hi {}", user.id)
}

fn main() {}
