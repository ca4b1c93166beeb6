// `Memcached`'s builder without the `memcached` feature: one error that
// names the feature, not one per builder call.
use std::time::Duration;

use cachefn::backends::Memcached;
use cachefn::Cache;

fn main() -> Result<(), cachefn::Error> {
    let shared = Memcached::builder("memcache://127.0.0.1:11211")
        .response_timeout(Duration::from_millis(100))
        .build()?;
    cachefn::set_default(Cache::builder().shared(shared).build());
    Ok(())
}
