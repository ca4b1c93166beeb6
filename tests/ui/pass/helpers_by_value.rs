// The `_by` helpers: a handler that has only an id clears, reads and sets
// the entry whose key is `q.user_id`, with the key the memoized call builds.
#![allow(clippy::needless_borrows_for_generic_args)] // references are what the test is about
use std::sync::atomic::{AtomicUsize, Ordering};

use cachefn::quickcache;
use serde::Serialize;

#[derive(Serialize)]
pub struct Query {
    pub user_id: u64,
    pub lang: String,
    pub verbose: bool,
}

static PROFILE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[quickcache(vary_on = "q.user_id")]
fn profile(q: &Query) -> String {
    PROFILE_RUNS.fetch_add(1, Ordering::SeqCst);
    format!("profile {}", q.user_id)
}

// Several paths, a parameter among them, and a method call.
#[quickcache(vary_on = ["q.lang", "page", "q.lang.len()"])]
fn listing(q: Query, page: u32) -> Vec<String> {
    vec![format!("{} {page}", q.lang)]
}

pub struct Repo {
    pub tenant: u32,
}

impl Repo {
    #[quickcache(vary_on = ["self.tenant", "id"])]
    fn title(&self, id: u64) -> String {
        format!("post {id} of tenant {}", self.tenant)
    }
}

#[quickcache(vary_on = "q.user_id")]
async fn profile_async(q: &Query) -> String {
    format!("async {}", q.user_id)
}

fn query(user_id: u64) -> Query {
    Query {
        user_id,
        lang: "en".into(),
        verbose: false,
    }
}

fn main() -> Result<(), cachefn::Error> {
    // The same key as the call's, whatever the integer's width or wrapper.
    let q = query(7);
    assert_eq!(profile::key_by(7u64), profile::key(&q));
    assert_eq!(profile::key_by(7), profile::key(&q)); // an i32 literal
    assert_eq!(profile::key_by(&7u8), profile::key(&q));
    assert_eq!(profile::key_by(Box::new(7u64)), profile::key(&q));
    assert_eq!(
        profile::key_by(7).as_str(),
        "ui_pass_helpers_by_value.profile:v1:7"
    );

    // Clear from the id alone: the body runs again.
    assert_eq!(profile(&q), "profile 7");
    assert_eq!(profile(&q), "profile 7");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(profile::get_cached_by(7).as_deref(), Some("profile 7"));
    profile::clear_by(7)?;
    assert_eq!(profile::get_cached_by(7), None);
    assert_eq!(profile(&q), "profile 7");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 2);

    // Set from the id alone: the call is served the value.
    profile::set_cached_by(8, "preset".to_string())?;
    assert_eq!(profile(&query(8)), "preset");
    assert_eq!(PROFILE_RUNS.load(Ordering::SeqCst), 2);

    // A value of another kind than the field's is a key error, not a miss.
    match profile::clear_by("7") {
        Err(cachefn::Error::Key(msg)) => {
            assert!(msg.contains("`q.user_id` is a `u64`"), "{msg}")
        }
        other => panic!("a string for a u64 field: {other:?}"),
    }
    assert_eq!(profile::get_cached_by("7"), None);
    assert!(profile(&q).starts_with("profile"));

    // Values in vary_on order; a parameter keeps its declared type.
    let args = listing::key(query(1), 3);
    assert_eq!(listing::key_by("en", 3, 2usize), args);
    assert_eq!(listing::key_by(&"en".to_string(), 3, 2), args);
    listing(query(1), 3);
    assert!(listing::get_cached_by("en", 3, 2).is_some());
    listing::clear_by("en", 3, 2)?;
    assert!(listing::get_cached(query(1), 3).is_none());

    // A method: `self.tenant` is a value like the others; no `Repo` needed.
    let repo = Repo { tenant: 4 };
    assert_eq!(Repo::title_key_by(4, 9), repo.title_key(9));
    repo.title(9);
    assert!(Repo::title_get_cached_by(4u32, 9).is_some());
    Repo::title_clear_by(4, 9)?;
    assert!(repo.title_get_cached(9).is_none());

    // An async function's `_by` helpers are awaited.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(profile_async(&query(5)).await, "async 5");
        assert_eq!(profile_async::key_by(5), profile_async::key(&query(5)));
        assert!(profile_async::get_cached_by(5).await.is_some());
        profile_async::clear_by(5).await?;
        assert!(profile_async::get_cached_by(5).await.is_none());
        Ok::<(), cachefn::Error>(())
    })?;
    Ok(())
}
