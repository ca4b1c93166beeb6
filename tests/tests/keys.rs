//! Keys: injective, bounded, readable, and the same in every process.
//!
//! That no two different values share a key is checked over the whole serde
//! data model in `key_model.rs`; these are the user-facing cases.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use cachefn::quickcache;
use serde::Serialize;

/// The shape of issue 10's first collision: `Some(W(None))` was keyed as
/// `None`.
#[derive(Clone, Debug, Serialize)]
pub struct W(Option<u8>);

static DESCRIBE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[quickcache]
fn describe(x: Option<W>) -> String {
    DESCRIBE_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{x:?}")
}

#[test]
fn some_of_a_newtype_of_none_is_not_none() {
    assert_eq!(describe(None), "None");
    assert_eq!(describe(Some(W(None))), "Some(W(None))");
    assert_eq!(describe(None), "None");
    assert_eq!(describe(Some(W(None))), "Some(W(None))");
    assert_eq!(DESCRIBE_CALLS.load(Ordering::SeqCst), 2);
    assert_ne!(describe::key(None), describe::key(Some(W(None))));
}

#[derive(Clone, Debug, Serialize)]
pub enum Role {
    Admin,
    Editor,
}

/// The second: a unit variant inside an untagged enum was keyed as the
/// string of its name.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Who {
    Role(Role),
    Name(String),
}

static GREET_CALLS: AtomicUsize = AtomicUsize::new(0);

#[quickcache]
fn greeting(who: Who) -> String {
    GREET_CALLS.fetch_add(1, Ordering::SeqCst);
    match who {
        Who::Role(r) => format!("role {r:?}"),
        Who::Name(n) => format!("user {n}"),
    }
}

#[test]
fn a_unit_variant_is_not_the_string_of_its_name() {
    for _ in 0..2 {
        assert_eq!(greeting(Who::Role(Role::Admin)), "role Admin");
        assert_eq!(greeting(Who::Name("Admin".into())), "user Admin");
        assert_eq!(greeting(Who::Role(Role::Editor)), "role Editor");
    }
    assert_eq!(GREET_CALLS.load(Ordering::SeqCst), 3);
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

/// A key as its cache stores it, without the cache's prefix.
fn stored(key: cachefn::Key) -> String {
    let stored = cachefn::Cache::memory().storage_key(&key);
    stored["cachefn:".len()..].to_owned()
}

fn fixed_keys() -> Vec<String> {
    let tags: BTreeMap<String, i32> = [("b".to_string(), -1), ("a".to_string(), 2)].into();
    vec![
        stored(profile::key(1001, BTreeMap::new())),
        stored(profile::key(7, tags)),
        stored(search::key("rust cache", Some(2), 0.5)),
        stored(search::key("", None, -0.0)),
        stored(search::key(&"é".repeat(150), None, f64::NAN)),
        stored(greeting::key(Who::Role(Role::Admin))),
        stored(greeting::key(Who::Name("Admin".into()))),
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
    // 192 bits of BLAKE3 of the whole text.
    assert!(
        keys[4].ends_with("#90c5b4c18aa521ec531dbb3ff2dc5237cb6482e5104200fc"),
        "{}",
        keys[4]
    );
    assert_eq!(keys[5], "keys.greeting:v1:.Admin");
    assert_eq!(keys[6], "keys.greeting:v1:Admin");
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
