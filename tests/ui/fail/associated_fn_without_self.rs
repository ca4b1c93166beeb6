// An associated function without `self`, inside an `impl` block.
pub struct Repo;

impl Repo {
    #[cachefn::quickcache]
    pub fn lookup(id: u64) -> u64 {
        id
    }
}

fn main() {}
