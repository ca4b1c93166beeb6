//! One behaviour test per `#[quickcache]` option, against counting bodies.

use std::time::Duration;

use cachefn::{quickcache, Cache};
use cachefn_tests::Runs;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub org: Org,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub slug: String,
}

impl User {
    pub fn handle(&self) -> String {
        format!("@{}", self.name)
    }
}

fn user(id: u64, name: &str) -> User {
    User {
        id,
        name: name.into(),
        org: Org {
            slug: "acme".into(),
        },
    }
}

#[test]
fn memoizes_per_argument_tuple() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn add(a: u64, b: u64) -> u64 {
        RUNS.hit();
        a + b
    }
    assert_eq!(add(1, 2), 3);
    assert_eq!(add(1, 2), 3);
    assert_eq!(RUNS.get(), 1);
    assert_eq!(add(2, 1), 3);
    assert_eq!(RUNS.get(), 2, "(1,2) and (2,1) are different keys");
}

#[test]
fn vary_on_a_field_ignores_the_rest() {
    static RUNS: Runs = Runs::new();
    #[quickcache(vary_on = "user.id")]
    fn greet(user: &User) -> String {
        RUNS.hit();
        format!("hi {}", user.name)
    }
    assert_eq!(greet(&user(1, "ann")), "hi ann");
    assert_eq!(
        greet(&user(1, "renamed")),
        "hi ann",
        "name is not part of the key"
    );
    assert_eq!(RUNS.get(), 1);
    greet(&user(2, "bob"));
    assert_eq!(RUNS.get(), 2);
    assert!(greet::key(&user(1, "x")).as_str().ends_with(":v1:1"));
}

#[test]
fn vary_on_a_list_with_nested_fields_and_methods() {
    static RUNS: Runs = Runs::new();
    #[quickcache(vary_on = ["user.org.slug", "user.handle()", "page"])]
    fn listing(user: &User, page: u32, _unused: &str) -> String {
        RUNS.hit();
        format!("{}:{page}", user.name)
    }
    listing(&user(1, "ann"), 1, "a");
    listing(&user(99, "ann"), 1, "b");
    assert_eq!(
        RUNS.get(),
        1,
        "id and the third argument are not in vary_on"
    );
    listing(&user(1, "ann"), 2, "a");
    assert_eq!(RUNS.get(), 2);
    let key = listing::key(&user(1, "ann"), 2);
    assert!(key.as_str().ends_with(":v1:acme:%40ann:2"), "{key}");
}

#[test]
fn empty_vary_on_is_one_entry() {
    static RUNS: Runs = Runs::new();
    #[quickcache(vary_on = [])]
    fn config(_host: &str) -> String {
        RUNS.hit();
        "cfg".into()
    }
    config("a");
    config("b");
    assert_eq!(RUNS.get(), 1);
    assert!(config::key().as_str().ends_with("config:v1"));
    config::clear().unwrap();
    config("c");
    assert_eq!(RUNS.get(), 2);
}

#[test]
fn skip_arg_refreshes_and_is_not_in_the_key() {
    static RUNS: Runs = Runs::new();
    static VERSION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    #[quickcache(skip_arg = "force")]
    fn page(id: u32, force: bool) -> String {
        RUNS.hit();
        format!("{id}@{}", VERSION.load(std::sync::atomic::Ordering::SeqCst))
    }
    assert_eq!(page(1, false), "1@1");
    VERSION.store(2, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(page(1, false), "1@1", "cached");
    assert_eq!(page(1, true), "1@2", "refresh runs the body");
    assert_eq!(page(1, false), "1@2", "and replaces the cached value");
    assert_eq!(RUNS.get(), 2);
    // The helpers take no skip_arg.
    assert_eq!(page::get_cached(1), Some("1@2".to_string()));
}

#[test]
fn timeout_expires_entries() {
    static RUNS: Runs = Runs::new();
    #[quickcache(timeout = 1)]
    fn short(x: u8) -> u8 {
        RUNS.hit();
        x
    }
    short(1);
    short(1);
    assert_eq!(RUNS.get(), 1);
    std::thread::sleep(Duration::from_millis(1100));
    short(1);
    assert_eq!(RUNS.get(), 2, "expired after 1 s");
}

#[test]
fn named_cache_and_custom_name_and_version() {
    static RUNS: Runs = Runs::new();
    let cache = Cache::memory();
    cachefn::register("options-named", cache.clone());
    #[quickcache(cache = "options-named", name = "shop.price", version = 4)]
    fn price(sku: &str) -> u32 {
        RUNS.hit();
        sku.len() as u32
    }
    assert_eq!(price("abc"), 3);
    assert_eq!(price::key("abc").as_str(), "shop.price:v4:abc");
    // The value lives in the named cache, under the function's key.
    assert_eq!(cache.get::<u32>(price::key("abc")), Some(3));
    assert_eq!(cachefn::default_cache().get::<u32>(price::key("abc")), None);
    assert_eq!(price("abc"), 3);
    assert_eq!(RUNS.get(), 1);
}

static VERSIONED_RUNS: Runs = Runs::new();
mod v1 {
    #[cachefn::quickcache(name = "versioned", version = 1)]
    pub fn f(x: u32) -> u32 {
        super::VERSIONED_RUNS.hit();
        x
    }
}
mod v2 {
    #[cachefn::quickcache(name = "versioned", version = 2)]
    pub fn f(x: u32) -> String {
        super::VERSIONED_RUNS.hit();
        format!("{x}")
    }
}

#[test]
fn versions_do_not_share_entries() {
    assert_eq!(v1::f(5), 5);
    assert_eq!(v2::f(5), "5");
    assert_eq!(VERSIONED_RUNS.get(), 2);
    assert_ne!(v1::f::key(5), v2::f::key(5));
    // clear_all removes every version of the name.
    v1::f::clear_all().unwrap();
    assert_eq!(v2::f::get_cached(5), None);
}

#[test]
fn unknown_cache_name_runs_the_body() {
    static RUNS: Runs = Runs::new();
    #[quickcache(cache = "never-registered-anywhere")]
    fn lonely(x: u32) -> u32 {
        RUNS.hit();
        x
    }
    assert_eq!(lonely(1), 1);
    assert_eq!(lonely(1), 1);
    assert_eq!(RUNS.get(), 2, "no cache: every call runs, none fails");
    assert!(matches!(
        lonely::clear(1),
        Err(cachefn::Error::UnknownCache(_))
    ));
    assert_eq!(lonely::get_cached(1), None);
}

#[test]
fn result_caches_only_ok() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn parse(s: &str) -> Result<u32, std::num::ParseIntError> {
        RUNS.hit();
        s.parse()
    }
    assert_eq!(parse("12"), Ok(12));
    assert_eq!(parse("12"), Ok(12));
    assert_eq!(RUNS.get(), 1);
    assert!(parse("x").is_err());
    assert!(parse("x").is_err());
    assert_eq!(RUNS.get(), 3, "errors are not cached");
    assert_eq!(parse::get_cached("12"), Some(12));
    assert_eq!(parse::get_cached("x"), None);
}

#[test]
fn result_aliases_work() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn read(name: &str) -> std::io::Result<String> {
        RUNS.hit();
        Ok(name.to_uppercase())
    }
    assert_eq!(read("a").unwrap(), "A");
    assert_eq!(read("a").unwrap(), "A");
    assert_eq!(RUNS.get(), 1);
    read::set_cached("b", "preset".into()).unwrap();
    assert_eq!(read("b").unwrap(), "preset");
    assert_eq!(RUNS.get(), 1);
}

#[test]
fn option_caches_none_unless_told_not_to() {
    static RUNS: Runs = Runs::new();
    static RUNS_NO: Runs = Runs::new();
    #[quickcache]
    fn find(id: u32) -> Option<String> {
        RUNS.hit();
        (id == 1).then(|| "one".to_string())
    }
    #[quickcache(cache_none = false)]
    fn find_no_none(id: u32) -> Option<String> {
        RUNS_NO.hit();
        (id == 1).then(|| "one".to_string())
    }
    find(2);
    find(2);
    assert_eq!(RUNS.get(), 1, "None is cached by default");
    assert_eq!(find::get_cached(2), Some(None));
    find_no_none(2);
    find_no_none(2);
    assert_eq!(RUNS_NO.get(), 2, "cache_none = false");
    find_no_none(1);
    find_no_none(1);
    assert_eq!(RUNS_NO.get(), 3, "Some is cached");
    assert_eq!(find_no_none::get_cached(2), None);
}

#[test]
fn unit_and_no_argument_functions() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn warm() {
        RUNS.hit();
    }
    warm();
    warm();
    assert_eq!(RUNS.get(), 1);
}

#[test]
fn bodies_may_return_early_and_use_question_mark() {
    #[quickcache]
    fn early(x: i32) -> Result<i32, String> {
        if x < 0 {
            return Err("negative".into());
        }
        let y: i32 = format!("{x}").parse().map_err(|_| "nope".to_string())?;
        Ok(y * 2)
    }
    assert_eq!(early(2), Ok(4));
    assert_eq!(early(-1), Err("negative".into()));
}

#[test]
fn owned_arguments_can_be_moved_by_the_body() {
    static RUNS: Runs = Runs::new();
    #[quickcache]
    fn consume(words: Vec<String>) -> Vec<String> {
        RUNS.hit();
        words
    }
    assert_eq!(consume(vec!["a".into()]), vec!["a".to_string()]);
    assert_eq!(consume(vec!["a".into()]), vec!["a".to_string()]);
    assert_eq!(RUNS.get(), 1);
}
