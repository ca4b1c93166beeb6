// The return type must be serializable to be cached.
#[derive(Clone)]
pub struct Report {
    pub total: u64,
}

#[cachefn::quickcache]
fn report(id: u64) -> Report {
    Report { total: id }
}

fn main() {}
