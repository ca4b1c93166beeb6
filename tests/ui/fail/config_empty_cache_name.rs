// PENDING: compiles today, should fail like `#[quickcache(cache = "")]` does
// (`cache` names a registered cache and cannot be empty). Without the check,
// every function of the crate runs uncached, with a runtime warning about
// the unknown cache "". Move to ui/fail/ once the config macro checks it.
cachefn::config::quickcache! {
    cache = "",
}

fn main() {}
