// `#[quickcache]` on an `async fn` without the `tokio` feature: the message
// names the feature, once (not once per generated helper).
#[cachefn::quickcache(timeout = 60)]
async fn title(id: u64) -> String {
    format!("post {id}")
}

fn main() {
    let _ = title(1);
}
