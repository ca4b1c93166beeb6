// A stored value must be owned serde data: it is read back as the same type.
#[derive(serde::Serialize)]
struct Page {
    html: String,
}

fn main() {
    let cache = cachefn::Cache::memory();
    let page = Page { html: String::new() };
    let _ = cache.set("page", &page, std::time::Duration::from_secs(60));
}
