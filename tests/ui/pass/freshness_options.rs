// The freshness options, in the attribute and in the config macro.
cachefn::config::quickcache! {
    timeout = 600,
    stale_while_revalidate = 30,
    early_refresh = 1.0,
    single_flight = "process",
}

#[cachefn::quickcache(
    timeout = 60,
    stale_while_revalidate = 30,
    stale_if_error = 600,
    early_refresh = 1
)]
fn price(item: u64) -> Result<u64, String> {
    Ok(item)
}

#[cachefn::quickcache(early_refresh = 0.5, single_flight = "shared")]
fn title(id: u64) -> String {
    id.to_string()
}

fn main() {
    assert_eq!(price(1), Ok(1));
    assert_eq!(title(2), "2");
    let _stats: cachefn::Stats = price::stats();
}
