// A misspelled option: the error names the closest option.
#[cachefn::quickcache(timout = 60)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
