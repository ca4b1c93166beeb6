//! `cachefn::config::quickcache!`: crate defaults, and attribute > crate > library.

use cachefn::quickcache;
use cachefn_tests::Runs;

cachefn::config::quickcache! {
    timeout = 1,
    local_timeout = 1,
    version = 7,
    cache_none = false,
}

static RUNS: Runs = Runs::new();

#[quickcache]
fn defaulted(x: u32) -> Option<u32> {
    RUNS.hit();
    (x > 0).then_some(x)
}

#[quickcache(version = 2, timeout = 60)]
fn overridden(x: u32) -> u32 {
    RUNS.hit();
    x
}

#[test]
fn crate_defaults_apply_and_attributes_win() {
    assert!(defaulted::key(1).as_str().ends_with(":v7:1"));
    assert!(overridden::key(1).as_str().ends_with(":v2:1"));

    // cache_none = false from the crate.
    defaulted(0);
    defaulted(0);
    assert_eq!(RUNS.get(), 2);

    // timeout = 1 from the crate; 60 from the attribute.
    defaulted(5);
    overridden(5);
    assert_eq!(RUNS.get(), 4);
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    defaulted(5);
    overridden(5);
    assert_eq!(RUNS.get(), 5, "defaulted expired, overridden did not");
}
