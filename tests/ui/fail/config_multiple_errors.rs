// The config macro also reports every mistake at once.
cachefn::config::quickcache! {
    timeout = "60",
    cache_none = 1,
    timeout = 5,
    local_timout = 5,
}

fn main() {}
