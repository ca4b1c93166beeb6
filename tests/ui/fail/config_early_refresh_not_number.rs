// The config macro checks the freshness options too.
cachefn::config::quickcache! {
    timeout = 600,
    early_refresh = "often",
}

fn main() {}
