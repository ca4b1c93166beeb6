// A parameter written as a pattern, named in `vary_on`: one error, at the
// pattern; not a second one saying that `id` is not a parameter.
pub struct Path<T>(pub T);

#[cachefn::quickcache(vary_on = "id")]
fn post(Path(id): Path<u64>) -> String {
    format!("post {id}")
}

fn main() {}
