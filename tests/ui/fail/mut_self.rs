// A hit skips the body, so `&mut self` would be changed only on a miss.
struct Counter {
    calls: u64,
}

impl Counter {
    #[cachefn::quickcache]
    fn next(&mut self) -> u64 {
        self.calls += 1;
        self.calls
    }
}

fn main() {}
