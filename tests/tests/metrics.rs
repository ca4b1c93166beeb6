//! The `metrics` feature: every memoized call reports to the `metrics`
//! facade, checked with `metrics-util`'s debugging recorder (installed
//! before the first call, as an application installs its recorder).

use std::collections::HashMap;
use std::time::Duration;

use cachefn::{quickcache, Cache};
use cachefn_tests::CountingBackend;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

#[test]
fn calls_errors_and_compute_time_are_reported() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let backend = CountingBackend::new();
    let cache = Cache::builder()
        .local(cachefn::backends::Memory::with_capacity(100))
        .shared(backend.clone())
        .prefix("metrics")
        .build();
    cachefn::register("metrics", cache);

    #[quickcache(cache = "metrics", name = "metered", local_timeout = 0)]
    fn metered(n: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(20));
        n
    }
    metered(1); // miss
    metered(1); // shared hit
    backend.set_down(true);
    metered(2); // miss, two shared errors (get, set)
    backend.set_down(false);

    #[quickcache(name = "metered_local")]
    fn metered_local(n: u64) -> u64 {
        n
    }
    metered_local(1);
    metered_local(1);
    metered_local(1);

    let mut counters: HashMap<(String, Vec<(String, String)>), u64> = HashMap::new();
    let mut compute = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let (_, key) = key.into_parts();
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (l.key().to_owned(), l.value().to_owned()))
            .collect();
        labels.sort();
        match value {
            DebugValue::Counter(n) => {
                counters.insert((key.name().to_owned(), labels), n);
            }
            DebugValue::Histogram(v) if key.name() == "cachefn_compute_seconds" => {
                compute.push((labels, v.len()));
            }
            _ => {}
        }
    }
    let calls = |f: &str, result: &str| {
        counters
            .get(&(
                "cachefn_calls_total".to_owned(),
                vec![
                    ("function".to_owned(), f.to_owned()),
                    ("result".to_owned(), result.to_owned()),
                ],
            ))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(calls("metered", "miss"), 2, "{counters:?}");
    assert_eq!(calls("metered", "shared_hit"), 1, "{counters:?}");
    assert_eq!(calls("metered", "local_hit"), 0, "{counters:?}");
    assert_eq!(calls("metered_local", "miss"), 1, "{counters:?}");
    assert_eq!(calls("metered_local", "local_hit"), 2, "{counters:?}");
    assert_eq!(
        counters.get(&(
            "cachefn_shared_errors_total".to_owned(),
            vec![("function".to_owned(), "metered".to_owned())]
        )),
        Some(&2),
        "{counters:?}"
    );
    let metered_compute = compute
        .iter()
        .find(|(labels, _)| labels == &[("function".to_owned(), "metered".to_owned())]);
    assert_eq!(metered_compute.map(|c| c.1), Some(2), "{compute:?}");
}
