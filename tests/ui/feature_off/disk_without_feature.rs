// `Disk` without the `disk` feature: one error that names the feature.
use cachefn::backends::Disk;
use cachefn::Cache;

fn main() -> Result<(), cachefn::Error> {
    let cache = Cache::builder()
        .shared(Disk::open(std::env::temp_dir().join("thumbnails"))?)
        .build();
    cachefn::register("thumbnails", cache);
    Ok(())
}
