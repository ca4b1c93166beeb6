// The crate defaults are written once.
cachefn::config::quickcache! {
    timeout = 600,
}

cachefn::config::quickcache! {
    timeout = 60,
}

fn main() {}
