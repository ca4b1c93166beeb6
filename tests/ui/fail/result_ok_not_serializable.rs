// For a `Result<T, E>`, `T` is what is cached and must be serializable.
#[derive(Clone)]
pub struct Report {
    pub total: u64,
}

#[cachefn::quickcache]
fn report(id: u64) -> Result<Report, String> {
    Ok(Report { total: id })
}

fn main() {}
