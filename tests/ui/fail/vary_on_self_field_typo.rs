// A misspelled field of `self` in a method's `vary_on`: one error, at the
// path, naming the field and the type.
pub struct Store {
    pub tenant: String,
}

impl Store {
    #[cachefn::quickcache(vary_on = ["self.tenat", "id"])]
    pub fn page(&self, id: u64) -> String {
        format!("{}:{id}", self.tenant)
    }
}

fn main() {}
