//! Keys: injective, bounded, readable, and the same in every process.

use std::collections::{BTreeMap, HashMap};

use cachefn::quickcache;
use parking_lot::Mutex;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    A,
    B(String),
    C { x: u8, y: Option<String> },
}

type Args = (
    String,
    Option<u32>,
    Vec<String>,
    i64,
    Option<Option<bool>>,
    Kind,
);

#[quickcache]
fn many(a: String, b: Option<u32>, c: Vec<String>, d: i64, e: Option<Option<bool>>, f: Kind) -> u8 {
    let _ = (a, b, c, d, e, f);
    0
}

fn key_of(t: &Args) -> String {
    let t = t.clone();
    many::key(t.0, t.1, t.2, t.3, t.4, t.5).to_string()
}

/// Strings from an alphabet heavy in separators and escapes, sometimes long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::string::string_regex("[a:,()\\[\\]{}=~+%#\" é\\-._]{0,6}").unwrap(),
        1 => proptest::string::string_regex("[ab]{190,260}").unwrap(),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::A),
        text().prop_map(Kind::B),
        (any::<u8>(), proptest::option::of(text())).prop_map(|(x, y)| Kind::C { x: x % 3, y }),
    ]
}

fn args() -> impl Strategy<Value = Args> {
    (
        text(),
        proptest::option::of(0u32..4),
        proptest::collection::vec(text(), 0..3),
        -2i64..3,
        proptest::option::of(proptest::option::of(any::<bool>())),
        kind(),
    )
}

static SEEN: Mutex<Option<HashMap<String, Args>>> = Mutex::new(None);

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// No two different argument tuples share a key, across all 10,000 cases.
    #[test]
    fn distinct_arguments_never_share_a_key(a in args(), b in args()) {
        let (ka, kb) = (key_of(&a), key_of(&b));
        prop_assert_eq!(ka == kb, a == b, "{:?} / {:?} -> {} / {}", a, b, ka, kb);
        for (k, t) in [(ka, a), (kb, b)] {
            prop_assert!(k.len() <= cachefn::MAX_KEY_LEN);
            prop_assert!(k.bytes().all(|c| (0x21..=0x7e).contains(&c)), "{}", k);
            let mut seen = SEEN.lock();
            let seen = seen.get_or_insert_with(HashMap::new);
            if let Some(prev) = seen.get(&k) {
                prop_assert_eq!(prev, &t, "two tuples share {}", k);
            } else {
                seen.insert(k, t);
            }
        }
    }
}

#[quickcache(vary_on = ["id", "tags"])]
fn profile(id: u64, tags: BTreeMap<String, i32>) -> String {
    format!("{id}{tags:?}")
}

#[quickcache]
fn search(q: &str, page: Option<u32>, ratio: f64) -> Vec<u8> {
    let _ = (q, page, ratio);
    vec![]
}

fn fixed_keys() -> Vec<String> {
    let tags: BTreeMap<String, i32> = [("b".to_string(), -1), ("a".to_string(), 2)].into();
    vec![
        profile::key(1001, BTreeMap::new()).to_string(),
        profile::key(7, tags).to_string(),
        search::key("rust cache", Some(2), 0.5).to_string(),
        search::key("", None, -0.0).to_string(),
        search::key(&"é".repeat(150), None, f64::NAN).to_string(),
    ]
}

/// Keys are literal text derived from the arguments: no seeded hasher,
/// `TypeId` or address, so this list holds on every build and machine.
#[test]
fn keys_are_stable_text() {
    let keys = fixed_keys();
    assert_eq!(keys[0], "keys.profile:v1:1001:{}");
    assert_eq!(keys[1], "keys.profile:v1:7:{a=2,b=-1}");
    assert_eq!(keys[2], "keys.search:v1:rust%20cache:2:0.5");
    assert_eq!(keys[3], "keys.search:v1:\"\":~:-0.0");
    assert_eq!(keys[4].len(), cachefn::MAX_KEY_LEN);
    assert!(keys[4].starts_with("keys.search:v1:%C3%A9%C3%A9"));
    assert!(
        keys[4].ends_with("#c641af0cdd20526ef3c248e345a49a22"),
        "{}",
        keys[4]
    );
}

/// A child process (this test binary again) computes the same keys.
#[test]
fn keys_are_the_same_in_another_process() {
    if std::env::var_os("CACHEFN_KEYS_CHILD").is_some() {
        for k in fixed_keys() {
            println!("KEY {k}");
        }
        return;
    }
    let out = cachefn_tests::run_child(
        "keys_are_the_same_in_another_process",
        &[("CACHEFN_KEYS_CHILD", "1")],
    );
    let child: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once("KEY ").map(|(_, k)| k.to_owned()))
        .collect();
    assert_eq!(child, fixed_keys());
}

/// `module_path!()` does not name the function a nested item sits in, so
/// these two get the same key head: the second one runs uncached rather
/// than share the first one's entries.
#[test]
fn same_named_functions_in_different_bodies_never_share_entries() {
    let first = {
        #[quickcache]
        fn helper(x: u64) -> u64 {
            x + 1
        }
        (helper(1), helper(1))
    };
    let second = {
        #[quickcache]
        fn helper(x: u64) -> u64 {
            x + 2
        }
        (helper(1), helper(1))
    };
    assert_eq!(first, (2, 2));
    assert_eq!(second, (3, 3));
}

pub struct Repo<T>(std::marker::PhantomData<T>);

impl<T: 'static> Repo<T> {
    #[quickcache]
    pub fn type_label(&self, n: u32) -> String {
        format!("{}:{n}", std::any::type_name::<T>())
    }
}

#[test]
fn a_generic_impl_never_shares_entries_between_types() {
    let a = Repo::<u8>(std::marker::PhantomData);
    let b = Repo::<u16>(std::marker::PhantomData);
    assert_eq!(a.type_label(1), "u8:1");
    assert_eq!(a.type_label(1), "u8:1");
    assert_eq!(b.type_label(1), "u16:1");
    assert_eq!(a.type_label(1), "u8:1");
    assert_eq!(b.type_label(1), "u16:1");
}
