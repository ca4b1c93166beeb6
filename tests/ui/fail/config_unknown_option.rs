// The config macro rejects unknown options, listing the crate-wide ones.
cachefn::config::quickcache! {
    timeout = 600,
    ttl = 60,
}

fn main() {}
