// The `_by` helpers take any serializable value, and only that.
#[derive(serde::Serialize)]
pub struct Query {
    pub user_id: u64,
}

pub struct NotAKey;

#[cachefn::quickcache(vary_on = "q.user_id")]
fn profile(q: &Query) -> String {
    q.user_id.to_string()
}

fn main() {
    let _ = profile::clear_by(NotAKey);
}
