//! The generated helpers (`clear`, `clear_all`, `key`, `get_cached`,
//! `set_cached`), on free functions and on methods.

use cachefn::quickcache;
use cachefn_tests::Runs;

static RUNS: Runs = Runs::new();
static OTHER_RUNS: Runs = Runs::new();

#[quickcache(vary_on = ["slug", "lang"])]
fn post(slug: &str, lang: u8, _trace_id: u64) -> String {
    RUNS.hit();
    format!("{slug}/{lang}")
}

#[quickcache]
fn other(slug: &str) -> String {
    OTHER_RUNS.hit();
    slug.to_uppercase()
}

#[test]
fn free_function_helpers() {
    // get_cached never runs the body.
    assert_eq!(post::get_cached("a", 1), None);
    assert_eq!(RUNS.get(), 0);

    post("a", 1, 10);
    post("b", 1, 11);
    other("a");
    assert_eq!(post::get_cached("a", 1).as_deref(), Some("a/1"));

    // key: parameters vary_on names, in declaration order.
    let key = post::key("a", 1);
    assert_eq!(key.as_str(), "helpers.post:v1:a:1");
    assert_eq!(key.to_string(), key.as_ref());

    // clear removes one entry.
    post::clear("a", 1).unwrap();
    assert_eq!(post::get_cached("a", 1), None);
    assert!(post::get_cached("b", 1).is_some());

    // set_cached stores as if the body had returned it.
    post::set_cached("c", 2, "preset".into()).unwrap();
    assert_eq!(post("c", 2, 0), "preset");
    assert_eq!(RUNS.get(), 2);

    // clear_all removes every entry of the function and nothing else.
    post::clear_all().unwrap();
    assert_eq!(post::get_cached("b", 1), None);
    assert_eq!(post::get_cached("c", 2), None);
    assert_eq!(other::get_cached("a").as_deref(), Some("A"));
    post("b", 1, 0);
    assert_eq!(RUNS.get(), 3);
    assert_eq!(OTHER_RUNS.get(), 1);
}

pub struct Repo {
    pub tenant: u32,
    pub runs: Runs,
}

impl Repo {
    /// `self` is not part of the key: helpers are associated functions.
    #[quickcache]
    pub fn global_count(&self, table: &str) -> usize {
        self.runs.hit();
        table.len()
    }

    /// `self.tenant` is part of the key: helpers take `&self`.
    #[quickcache(vary_on = ["self.tenant", "id"], timeout = 60)]
    pub fn item(&self, id: u64) -> Option<String> {
        self.runs.hit();
        Some(format!("{}:{id}", self.tenant))
    }
}

#[test]
fn method_helpers() {
    let a = Repo {
        tenant: 1,
        runs: Runs::new(),
    };
    let b = Repo {
        tenant: 2,
        runs: Runs::new(),
    };

    assert_eq!(a.global_count("users"), 5);
    assert_eq!(b.global_count("users"), 5);
    assert_eq!(a.runs.get() + b.runs.get(), 1, "self is not in the key");
    assert_eq!(Repo::global_count_get_cached("users"), Some(5));
    assert_eq!(
        Repo::global_count_key("users").as_str(),
        "helpers.Repo.global_count:v1:users"
    );
    Repo::global_count_clear("users").unwrap();
    assert_eq!(Repo::global_count_get_cached("users"), None);

    assert_eq!(a.item(7).as_deref(), Some("1:7"));
    assert_eq!(b.item(7).as_deref(), Some("2:7"));
    assert_eq!(a.item(7).as_deref(), Some("1:7"));
    assert_eq!(a.runs.get(), 2);
    assert_eq!(a.item_key(7).as_str(), "helpers.Repo.item:v1:1:7");
    assert_eq!(b.item_get_cached(7), Some(Some("2:7".to_string())));
    b.item_set_cached(8, Some("manual".into())).unwrap();
    assert_eq!(b.item(8).as_deref(), Some("manual"));
    a.item_clear(7).unwrap();
    assert_eq!(a.item_get_cached(7), None);
    assert!(b.item_get_cached(7).is_some());
    Repo::item_clear_all().unwrap();
    assert_eq!(b.item_get_cached(7), None);
}

/// A function whose caching is turned off (here: its key head is another
/// function's) says so from its helpers, instead of blaming its key.
#[test]
fn a_disabled_function_says_why_from_its_helpers() {
    let first = {
        #[quickcache]
        fn twin(x: u64) -> u64 {
            x + 1
        }
        (twin(1), twin::clear(1))
    };
    let second = {
        #[quickcache]
        fn twin(x: u64) -> u64 {
            x + 2
        }
        (
            twin(1),
            twin::clear(1),
            twin::set_cached(1, 9),
            twin::get_cached(1),
        )
    };
    assert_eq!(first.0, 2);
    assert!(first.1.is_ok());
    assert_eq!(second.0, 3, "the disabled function runs its body");
    let err = second
        .1
        .expect_err("clearing a disabled function is an error");
    assert!(matches!(err, cachefn::Error::Disabled(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("disabled"), "{msg}");
    assert!(
        msg.contains("key head"),
        "the reason is in the error: {msg}"
    );
    assert!(!msg.contains("could not build a cache key"), "{msg}");
    assert!(matches!(second.2, Err(cachefn::Error::Disabled(_))));
    assert_eq!(second.3, None);
}
