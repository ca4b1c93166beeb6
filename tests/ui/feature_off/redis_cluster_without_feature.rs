// `RedisCluster` without the `redis-cluster` feature: one error that names
// the feature.
use cachefn::backends::RedisCluster;
use cachefn::Cache;

fn main() -> Result<(), cachefn::Error> {
    let nodes = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"];
    let cache = Cache::builder().shared(RedisCluster::open(&nodes)?).build();
    cachefn::set_default(cache);
    Ok(())
}
