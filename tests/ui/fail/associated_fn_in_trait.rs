// A provided function without `self` in a trait.
pub trait Lookup {
    #[cachefn::quickcache]
    fn lookup(id: u64) -> u64 {
        id
    }
}

fn main() {}
