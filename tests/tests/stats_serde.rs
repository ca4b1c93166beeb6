//! `Stats` serializes as a struct of its counters, by field name, so that a
//! stats endpoint can return it as it is.

use cachefn::quickcache;
use serde_json::json;

#[quickcache(timeout = 60)]
fn square(n: u64) -> u64 {
    n * n
}

#[test]
fn stats_serialize_every_counter_by_name() {
    square(2);
    square(2);
    square(2);
    square(3);
    let stats = square::stats();
    assert_eq!((stats.misses, stats.local_hits), (2, 2));
    let value = serde_json::to_value(stats).unwrap();
    assert_eq!(
        value,
        json!({
            "local_hits": 2,
            "shared_hits": 0,
            "misses": 2,
            "stale_hits": 0,
            "early_refreshes": 0,
            "shared_errors": 0,
            "undecodable": 0,
            "invalidations": 0,
            "unauthenticated": 0,
        })
    );
}

#[test]
fn each_field_is_written_under_its_own_name() {
    // Distinct values, so that two names swapped in the impl show.
    let mut stats = cachefn::Stats::default();
    let fields: [(&str, &mut u64); 9] = [
        ("local_hits", &mut stats.local_hits),
        ("shared_hits", &mut stats.shared_hits),
        ("misses", &mut stats.misses),
        ("stale_hits", &mut stats.stale_hits),
        ("early_refreshes", &mut stats.early_refreshes),
        ("shared_errors", &mut stats.shared_errors),
        ("undecodable", &mut stats.undecodable),
        ("invalidations", &mut stats.invalidations),
        ("unauthenticated", &mut stats.unauthenticated),
    ];
    let mut expected = serde_json::Map::new();
    for (i, (name, field)) in fields.into_iter().enumerate() {
        *field = 10 + i as u64;
        expected.insert(name.to_string(), json!(10 + i as u64));
    }
    let text = serde_json::to_string(&stats).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).unwrap(),
        serde_json::Value::Object(expected)
    );
    // Declaration order, as a derive would write it.
    assert!(
        text.starts_with("{\"local_hits\":10,\"shared_hits\":11,"),
        "{text}"
    );
}
