//! The default cache, named caches, and crate-wide `#[quickcache]` defaults.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use cachefn_backends::sync::RwLock;

use crate::{Cache, Error};

struct Registry {
    default: Option<Cache>,
    named: BTreeMap<String, Cache>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    default: None,
    named: BTreeMap::new(),
});

/// Bumped by every change to the registry; memoized functions re-resolve
/// their cache when it moves.
static EPOCH: AtomicU64 = AtomicU64::new(1);

pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Make `cache` the cache of every `#[quickcache]` function without a
/// `cache = "..."` option (and of crates whose defaults name none).
///
/// It may be called at any time; calls that start afterwards use the new
/// cache. Without a call the default is [`Cache::memory()`].
///
/// ```
/// use cachefn::{Cache, backends::Memory};
///
/// let cache = Cache::builder().local(Memory::with_capacity(50_000)).prefix("blog").build();
/// cachefn::set_default(cache.clone());
/// assert_eq!(cachefn::default_cache().prefix(), "blog");
/// ```
pub fn set_default(cache: Cache) {
    REGISTRY.write().default = Some(cache);
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Register `cache` under `name`, for `#[quickcache(cache = "name")]` and
/// [`cache()`]. Registering a name again replaces the cache.
///
/// ```
/// use cachefn::Cache;
///
/// cachefn::register("sessions", Cache::memory());
/// assert!(cachefn::cache("sessions").is_ok());
/// ```
pub fn register(name: impl Into<String>, cache: Cache) {
    REGISTRY.write().named.insert(name.into(), cache);
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// The default cache (see [`set_default`]).
pub fn default_cache() -> Cache {
    if let Some(cache) = &REGISTRY.read().default {
        return cache.clone();
    }
    REGISTRY
        .write()
        .default
        .get_or_insert_with(Cache::memory)
        .clone()
}

/// The cache registered under `name`.
///
/// # Errors
///
/// [`Error::UnknownCache`] when nothing was registered under `name`.
///
/// ```
/// assert!(matches!(cachefn::cache("never-registered"), Err(cachefn::Error::UnknownCache(_))));
/// ```
pub fn cache(name: &str) -> Result<Cache, Error> {
    REGISTRY
        .read()
        .named
        .get(name)
        .cloned()
        .ok_or_else(|| Error::UnknownCache(name.to_owned()))
}

/// Options that `#[quickcache]` and `config::quickcache!` set; `None` falls
/// through to the next level (attribute, then crate defaults, then library).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub timeout: Option<u64>,
    pub local_timeout: Option<u64>,
    pub version: Option<u64>,
    pub cache: Option<&'static str>,
    pub cache_none: Option<bool>,
    /// Seconds past `timeout` during which an expired entry is served at
    /// once while one caller recomputes it.
    pub stale_while_revalidate: Option<u64>,
    /// Seconds past `timeout` during which an expired entry is served when
    /// recomputing it returns `Err`.
    pub stale_if_error: Option<u64>,
    /// XFetch's `beta` (0: off).
    pub early_refresh: Option<f64>,
    /// `single_flight = "shared"` (`true`) or `"process"` (`false`).
    pub single_flight_shared: Option<bool>,
}

impl Options {
    /// `self`, with unset options taken from `fallback`.
    pub(crate) fn or(self, fallback: Options) -> Options {
        Options {
            timeout: self.timeout.or(fallback.timeout),
            local_timeout: self.local_timeout.or(fallback.local_timeout),
            version: self.version.or(fallback.version),
            cache: self.cache.or(fallback.cache),
            cache_none: self.cache_none.or(fallback.cache_none),
            stale_while_revalidate: self
                .stale_while_revalidate
                .or(fallback.stale_while_revalidate),
            stale_if_error: self.stale_if_error.or(fallback.stale_if_error),
            early_refresh: self.early_refresh.or(fallback.early_refresh),
            single_flight_shared: self.single_flight_shared.or(fallback.single_flight_shared),
        }
    }
}

/// The defaults registered by `cachefn::config::quickcache!` in one crate.
#[doc(hidden)]
pub struct CrateDefaults {
    pub module_path: &'static str,
    pub options: Options,
}

inventory::collect!(CrateDefaults);

pub(crate) fn crate_of(module_path: &str) -> &str {
    module_path.split("::").next().unwrap_or(module_path)
}

/// The crate defaults registered for the crate of `module_path`.
pub(crate) fn crate_defaults(module_path: &str) -> Options {
    let krate = crate_of(module_path);
    let mut found = inventory::iter::<CrateDefaults>
        .into_iter()
        .filter(|d| crate_of(d.module_path) == krate);
    let first = found.next().map(|d| d.options).unwrap_or_default();
    if found.next().is_some() {
        tracing::warn!(
            target: "cachefn",
            krate,
            "cachefn::config::quickcache! appears more than once in this crate; one of them is used"
        );
    }
    first
}
