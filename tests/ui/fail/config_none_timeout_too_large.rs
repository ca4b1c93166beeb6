// In `config::quickcache!` too, a `None` never lives longer than `timeout`,
// and a whole number of seconds fits in a u64.
cachefn::config::quickcache! {
    timeout = 30,
    none_timeout = 31,
}

mod other {
    cachefn::config::quickcache! {
        none_timeout = 99999999999999999999999,
    }
}

fn main() {}
