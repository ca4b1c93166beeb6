//! What whoever can write to the shared server, or chooses the arguments,
//! can make a cache return, against a real `redis-server`: values are bound
//! to the key they were written under, a signing cache accepts only values
//! signed by its deployment (with rotation), long keys end in a
//! cryptographic digest, and logs carry no argument values.

use std::sync::Arc;
use std::time::Duration;

use cachefn::backends::{Memory, Redis};
use cachefn::{codec, quickcache, Cache};
use cachefn_tests::redis_server::RedisServer;
use cachefn_tests::{started, Runs};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

const SECRET: &str = "the deployment's signing secret, 32+ bytes";
const OLD_SECRET: &str = "last quarter's signing secret, 32+ bytes";

/// A cache of its own local tier over `server` (another process, as far as
/// local copies go), with optional signing keys.
fn cache(server: &RedisServer, sign: Option<&str>, fallbacks: &[&str]) -> Cache {
    let mut b = Cache::builder()
        .local(Memory::with_capacity(1_000))
        .shared(Redis::open(&server.url()).unwrap())
        .prefix("trust");
    if let Some(key) = sign {
        b = b
            .signing_key(key)
            .signing_key_fallbacks(fallbacks.iter().copied());
    }
    b.build()
}

fn raw_get(server: &RedisServer, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(&mut server.raw()).unwrap()
}

fn raw_set(server: &RedisServer, key: &str, bytes: &[u8]) {
    redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .query::<()>(&mut server.raw())
        .unwrap();
}

static ADMIN_CHECKS: Runs = Runs::new();

#[quickcache(cache = "trust-admin", timeout = 60)]
fn can_admin(user: u64) -> bool {
    ADMIN_CHECKS.hit();
    user == 1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    user: u64,
    email: String,
}

static PROFILES: Runs = Runs::new();

#[quickcache(cache = "trust-profile", timeout = 60)]
fn profile(user: u64) -> Profile {
    PROFILES.hit();
    Profile {
        user,
        email: format!("user{user}@example.com"),
    }
}

/// A well-formed value planted under a memoized key (the attack of the
/// issue: `encode(&true)` under `can_admin(666)`'s key), and a value copied
/// from one user's key to another's: both are misses for an unsigned cache
/// unless bound to the very key they are read under; with a signing key,
/// even a correctly bound value that this deployment did not sign is a
/// miss, counted as unauthenticated.
#[test]
fn planted_and_copied_values_are_misses() {
    let server = started!(RedisServer::start());
    let c = cache(&server, None, &[]);
    cachefn::register("trust-admin", c.clone());
    cachefn::register("trust-profile", c.clone());

    // Copied: user 1's profile under user 2's key.
    assert_eq!(profile(1).user, 1);
    let one = raw_get(&server, &c.storage_key(profile::key(1))).unwrap();
    raw_set(&server, &c.storage_key(profile::key(2)), &one);
    let reader = cache(&server, None, &[]);
    cachefn::register("trust-profile", reader.clone());
    let runs = PROFILES.get();
    assert_eq!(profile(2).user, 2, "never user 1's profile");
    assert_eq!(PROFILES.get(), runs + 1, "the copy was a miss");
    assert_eq!(reader.stats().undecodable, 1);

    // Planted: bytes bound to another key (or to none) under 666's key.
    let key666 = c.storage_key(can_admin::key(666));
    for wrong in ["", "trust:other", &c.storage_key(can_admin::key(1))] {
        raw_set(&server, &key666, &codec::encode(wrong, &true, 0).unwrap());
        cachefn::register("trust-admin", cache(&server, None, &[]));
        assert!(!can_admin(666), "planted under the key of {wrong:?}");
    }

    // Bound to the right key: unsigned caches cannot tell it from their
    // own (the check is public); a signing cache can.
    raw_set(&server, &key666, &codec::encode(&key666, &true, 0).unwrap());
    let signed = cache(&server, Some(SECRET), &[]);
    cachefn::register("trust-admin", signed.clone());
    let runs = ADMIN_CHECKS.get();
    assert!(!can_admin(666), "a forged value is never served");
    assert_eq!(ADMIN_CHECKS.get(), runs + 1);
    assert_eq!(signed.stats().unauthenticated, 1);
    assert_eq!(can_admin::stats().unauthenticated, 1);
    // Its own value (signed now) is served from then on, to any process
    // that holds the key.
    cachefn::register("trust-admin", cache(&server, Some(SECRET), &[]));
    assert!(!can_admin(666));
    assert_eq!(
        ADMIN_CHECKS.get(),
        runs + 1,
        "its own signed value is a hit"
    );
}

static PAGES: Runs = Runs::new();

#[quickcache(cache = "trust-rotation", timeout = 60)]
fn page(id: u64) -> String {
    PAGES.hit();
    format!("page {id}")
}

/// Rotation across processes: a value signed with the old key is accepted
/// by a cache that has it as a fallback, while what that cache writes is
/// signed with the new key, which a cache still on the old key rejects.
/// A cache without signing reads signed values by their check.
#[test]
fn signing_keys_rotate_through_fallbacks() {
    let server = started!(RedisServer::start());
    let use_cache = |c: &Cache| cachefn::register("trust-rotation", c.clone());

    let old = cache(&server, Some(OLD_SECRET), &[]);
    use_cache(&old);
    page(1); // signed with the old key
    let rotated = cache(&server, Some(SECRET), &[OLD_SECRET]);
    use_cache(&rotated);
    let runs = PAGES.get();
    assert_eq!(page(1), "page 1");
    assert_eq!(PAGES.get(), runs, "the old key is still accepted");
    assert_eq!(page(2), "page 2"); // signed with the new key
    assert_eq!(PAGES.get(), runs + 1);

    let still_old = cache(&server, Some(OLD_SECRET), &[]);
    use_cache(&still_old);
    assert_eq!(page(2), "page 2");
    assert_eq!(
        PAGES.get(),
        runs + 2,
        "the new key is not accepted by the old"
    );
    assert_eq!(still_old.stats().unauthenticated, 1);

    let unsigned = cache(&server, None, &[]);
    use_cache(&unsigned);
    assert_eq!(page(1), "page 1");
    assert_eq!(PAGES.get(), runs + 2, "a signed value reads without a key");
    // The low-level API signs and verifies the same way.
    rotated
        .set("plain", &7u32, Duration::from_secs(60))
        .unwrap();
    assert_eq!(
        cache(&server, Some(SECRET), &[]).get::<u32>("plain"),
        Some(7)
    );
    assert_eq!(
        cache(&server, Some(OLD_SECRET), &[]).get::<u32>("plain"),
        None
    );
}

/// Secrets never show: not in `Debug`, and a short key is refused with a
/// message that says why (and not what the key was).
#[test]
fn signing_keys_never_show_and_must_be_long() {
    let c = Cache::builder()
        .local(Memory::with_capacity(10))
        .signing_key(SECRET)
        .signing_key_fallbacks([OLD_SECRET])
        .build();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains(SECRET) && !shown.contains(OLD_SECRET),
        "{shown}"
    );
    let short = std::panic::catch_unwind(|| Cache::builder().signing_key("too short"));
    let why = short
        .err()
        .and_then(|e| e.downcast::<String>().ok())
        .unwrap();
    assert!(why.contains("at least 32 bytes"), "{why}");
    assert!(!why.contains("too short"), "{why}");
}

static SEARCHES: Runs = Runs::new();

#[quickcache(cache = "trust-long", timeout = 60)]
fn search(q: &str) -> String {
    SEARCHES.hit();
    format!(
        "results for a query of {} bytes ending {}",
        q.len(),
        &q[q.len() - 3..]
    )
}

/// Long arguments (584 bytes, alike in their first 500, as in the issue):
/// distinct stored keys, bounded, and each process gets its own value.
#[test]
fn long_arguments_never_share_a_stored_key() {
    let server = started!(RedisServer::start());
    let common = "a".repeat(500);
    let q1 = format!("{common}{}", "x".repeat(84));
    let q2 = format!("{common}{}y", "x".repeat(83));
    let writer = cache(&server, None, &[]);
    cachefn::register("trust-long", writer.clone());
    let k1 = writer.storage_key(search::key(&q1));
    let k2 = writer.storage_key(search::key(&q2));
    assert_ne!(k1, k2);
    assert!(k1.len() <= 250 && k2.len() <= 250);
    assert_eq!(
        search::key(&q1).as_str().len(),
        "trust.search:v1:".len() + 584
    );
    assert!(search(&q1).ends_with("xxx"));
    cachefn::register("trust-long", cache(&server, None, &[]));
    let runs = SEARCHES.get();
    assert!(search(&q2).ends_with("xxy"), "never q1's value");
    assert_eq!(SEARCHES.get(), runs + 1);
    assert!(search(&q1).ends_with("xxx"));
    assert_eq!(SEARCHES.get(), runs + 1, "q1's own value, from the server");
    // A text shaped like q1's stored key is another key (no pass-through).
    let posing = &k1["trust:".len()..];
    assert_ne!(writer.storage_key(posing), k1);
}

/// What the log lines of a test recorded, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl tracing::Subscriber for Captured {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        struct Text<'a>(&'a mut String);
        impl tracing::field::Visit for Text<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={v:?}", f.name()));
            }
        }
        let mut out = self.0.lock();
        out.push_str(&format!("\n{} ", event.metadata().level()));
        event.record(&mut Text(&mut out));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A value that cannot be encoded (postcard refuses a sequence of unknown
/// length), so the store logs a warning about its key.
#[derive(Clone, Debug, Deserialize)]
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        s.serialize_seq(None)?.end()
    }
}

#[quickcache(cache = "trust-logs", timeout = 60)]
fn lookup(q: &str) -> Unencodable {
    let _ = q;
    Unencodable
}

/// Warnings name the function and a short digest of the key, never the
/// arguments (users' queries, e-mail addresses).
#[test]
fn warnings_carry_no_argument_values() {
    let server = started!(RedisServer::start());
    cachefn::register("trust-logs", cache(&server, None, &[]));
    let logs = Captured::default();
    tracing::subscriber::with_default(logs.clone(), || {
        lookup("alice@example.com private query");
    });
    let logs = logs.0.lock().clone();
    assert!(logs.contains("WARN"), "a warning was logged: {logs}");
    for line in logs
        .lines()
        .filter(|l| l.starts_with("WARN") || l.starts_with("ERROR"))
    {
        assert!(!line.contains("alice"), "{line}");
        assert!(!line.contains("private"), "{line}");
    }
}
