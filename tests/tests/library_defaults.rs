//! Without `config::quickcache!`, the library defaults apply; `set_default`
//! switches the cache of later calls. One test, because both read the
//! process-wide default cache.

use cachefn::quickcache;

#[quickcache]
fn plain(x: u32) -> Option<u32> {
    (x > 0).then_some(x)
}

#[quickcache]
fn where_am_i(x: u32) -> u32 {
    x
}

#[test]
fn library_defaults_and_set_default() {
    assert_eq!(plain::key(3).as_str(), "library_defaults.plain:v1:3");
    plain(0);
    assert_eq!(
        plain::get_cached(0),
        Some(None),
        "cache_none defaults to true"
    );

    let first = cachefn::Cache::memory();
    cachefn::set_default(first.clone());
    where_am_i(1);
    assert_eq!(first.get::<u32>(where_am_i::key(1)), Some(1));
    let second = cachefn::Cache::memory();
    cachefn::set_default(second.clone());
    assert_eq!(where_am_i::get_cached(1), None, "the new default is empty");
    where_am_i(1);
    assert_eq!(second.get::<u32>(where_am_i::key(1)), Some(1));
}
