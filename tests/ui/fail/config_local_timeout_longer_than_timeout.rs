// The config macro checks the two timeouts against each other too.
cachefn::config::quickcache! {
    timeout = 10,
    local_timeout = 60,
}

fn main() {}
