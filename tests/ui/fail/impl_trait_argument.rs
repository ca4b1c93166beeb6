// `impl Trait` in argument position makes the function generic.
#[cachefn::quickcache]
fn total(x: impl Into<u64>) -> u64 {
    x.into()
}

fn main() {}
