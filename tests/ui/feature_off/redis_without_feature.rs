// `Redis` without the `redis` feature: one error that names the feature.
use cachefn::backends::{Memory, Redis};
use cachefn::Cache;

fn main() -> Result<(), cachefn::Error> {
    let cache = Cache::builder()
        .local(Memory::with_capacity(10_000))
        .shared(Redis::open("redis://127.0.0.1:6379/0")?)
        .build();
    cachefn::set_default(cache);
    Ok(())
}
