// `vary_on` depends on a function's parameters: it cannot be crate-wide.
cachefn::config::quickcache! {
    timeout = 600,
    vary_on = "id",
}

fn main() {}
