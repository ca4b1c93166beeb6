// `self` cannot be the refresh flag.
pub struct Repo;

impl Repo {
    #[cachefn::quickcache(skip_arg = "self")]
    pub fn lookup(&self, id: u64, force: bool) -> u64 {
        let _ = force;
        id
    }
}

fn main() {}
