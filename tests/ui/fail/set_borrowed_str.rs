// A stored value must be owned: it is read back as the same type.
fn main() {
    let cache = cachefn::Cache::memory();
    let _ = cache.set("title", &"Hello", std::time::Duration::from_secs(60));
}
