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

#[inline]
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
    /// Seconds a `None` of an `Option` function lives (at most `timeout`;
    /// 0: `None` is not cached).
    pub none_timeout: Option<u64>,
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
        // `cache_none` and `none_timeout` both say what becomes of `None`:
        // a level that sets either sets both, so that an attribute's
        // `none_timeout = 10` is not undone by a crate's `cache_none = false`.
        let (cache_none, none_timeout) = if self.cache_none.is_some() || self.none_timeout.is_some()
        {
            (self.cache_none, self.none_timeout)
        } else {
            (fallback.cache_none, fallback.none_timeout)
        };
        Options {
            timeout: self.timeout.or(fallback.timeout),
            local_timeout: self.local_timeout.or(fallback.local_timeout),
            version: self.version.or(fallback.version),
            cache: self.cache.or(fallback.cache),
            cache_none,
            none_timeout,
            stale_while_revalidate: self
                .stale_while_revalidate
                .or(fallback.stale_while_revalidate),
            stale_if_error: self.stale_if_error.or(fallback.stale_if_error),
            early_refresh: self.early_refresh.or(fallback.early_refresh),
            single_flight_shared: self.single_flight_shared.or(fallback.single_flight_shared),
        }
    }
}

/// Every option of a memoized function, once the attribute, the crate
/// defaults and the library defaults have been applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub timeout: u64,
    /// Never longer than `timeout`.
    pub local_timeout: u64,
    pub version: u64,
    pub cache: Option<&'static str>,
    pub cache_none: bool,
    /// How long a cached `None` lives, when shorter than `timeout`.
    pub none_timeout: Option<u64>,
    pub stale_while_revalidate: u64,
    pub stale_if_error: u64,
    /// Finite, from 0 to [`MAX_EARLY_REFRESH`].
    pub early_refresh: f64,
    pub single_flight_shared: bool,
}

/// The library defaults: the last level of attribute > crate > library, and
/// the only place they are written (the macro leaves unset options `None`;
/// [`DEFAULT_LOCAL_TTL`](crate::DEFAULT_LOCAL_TTL) is `local_timeout`; the
/// README and the `config::quickcache!` docs are checked against them).
pub(crate) const LIBRARY_DEFAULTS: Resolved = Resolved {
    timeout: 300,
    local_timeout: 10,
    version: 1,
    cache: None,
    cache_none: true,
    none_timeout: None,
    stale_while_revalidate: 0,
    stale_if_error: 0,
    early_refresh: 0.0,
    single_flight_shared: false,
};

/// The largest `early_refresh` (the macro rejects larger ones; a value it
/// did not check is clamped).
pub(crate) const MAX_EARLY_REFRESH: f64 = 1_000.0;

impl Options {
    /// These options, with unset ones taken from the library defaults.
    pub(crate) fn resolve(self) -> Resolved {
        let d = LIBRARY_DEFAULTS;
        let timeout = self.timeout.unwrap_or(d.timeout);
        Resolved {
            timeout,
            local_timeout: self.local_timeout.unwrap_or(d.local_timeout).min(timeout),
            version: self.version.unwrap_or(d.version),
            cache: self.cache.or(d.cache),
            // `none_timeout = 0` is `cache_none = false` (the macro rejects
            // the two together when they disagree).
            cache_none: self.none_timeout != Some(0) && self.cache_none.unwrap_or(d.cache_none),
            none_timeout: self
                .none_timeout
                .or(d.none_timeout)
                .filter(|&n| n > 0 && n < timeout),
            stale_while_revalidate: self
                .stale_while_revalidate
                .unwrap_or(d.stale_while_revalidate),
            stale_if_error: self.stale_if_error.unwrap_or(d.stale_if_error),
            // A value the macro did not check (a hand-written SiteOptions)
            // is clamped rather than trusted.
            early_refresh: self
                .early_refresh
                .filter(|b| b.is_finite() && *b > 0.0)
                .map_or(d.early_refresh, |b| b.min(MAX_EARLY_REFRESH)),
            single_flight_shared: self.single_flight_shared.unwrap_or(d.single_flight_shared),
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

#[cfg(test)]
mod defaults_tests {
    use super::*;

    /// The docs state the library defaults; they follow the constant.
    #[test]
    fn the_docs_state_the_library_defaults() {
        let fold = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let d = LIBRARY_DEFAULTS;
        let stated = format!(
            "(`timeout = {}`, `local_timeout = {}`, `version = {}`, `cache_none = {}`",
            d.timeout, d.local_timeout, d.version, d.cache_none
        );
        let readme = fold(include_str!("../README.md"));
        assert!(readme.contains(&stated), "README: {stated}");
        let lib = fold(&include_str!("lib.rs").replace("///", ""));
        assert!(lib.contains(&stated), "lib.rs: {stated}");
        assert_eq!(
            crate::DEFAULT_LOCAL_TTL,
            std::time::Duration::from_secs(d.local_timeout)
        );
    }

    #[test]
    fn resolve_takes_unset_options_from_the_library() {
        let r = Options::default().resolve();
        assert_eq!((r.timeout, r.local_timeout, r.version), (300, 10, 1));
        let r = Options {
            timeout: Some(5),
            early_refresh: Some(f64::INFINITY),
            ..Options::default()
        }
        .resolve();
        assert_eq!((r.timeout, r.local_timeout, r.early_refresh), (5, 5, 0.0));
        let r = Options {
            early_refresh: Some(5_000.0),
            ..Options::default()
        }
        .resolve();
        assert_eq!(r.early_refresh, MAX_EARLY_REFRESH);
    }

    #[test]
    fn none_timeout_is_at_most_timeout_and_zero_is_cache_none_false() {
        let with = |timeout, cache_none, none_timeout| {
            let r = Options {
                timeout,
                cache_none,
                none_timeout,
                ..Options::default()
            }
            .resolve();
            (r.cache_none, r.none_timeout)
        };
        assert_eq!(with(None, None, None), (true, None));
        assert_eq!(with(Some(60), None, Some(10)), (true, Some(10)));
        // Not shorter than `timeout`: `None` lives `timeout`, as without it.
        assert_eq!(with(Some(60), None, Some(60)), (true, None));
        assert_eq!(with(Some(60), None, Some(600)), (true, None));
        assert_eq!(with(None, None, Some(400)), (true, None));
        assert_eq!(with(Some(60), None, Some(0)), (false, None));
        assert_eq!(with(Some(60), Some(true), Some(0)), (false, None));
        assert_eq!(with(Some(60), Some(false), Some(10)), (false, Some(10)));
    }

    #[test]
    fn a_level_that_says_what_becomes_of_none_says_it_whole() {
        let crate_wide = Options {
            cache_none: Some(false),
            ..Options::default()
        };
        let attribute = Options {
            none_timeout: Some(10),
            ..Options::default()
        };
        let r = attribute.or(crate_wide).resolve();
        assert_eq!((r.cache_none, r.none_timeout), (true, Some(10)));
        let crate_wide = Options {
            none_timeout: Some(5),
            ..Options::default()
        };
        let attribute = Options {
            cache_none: Some(true),
            ..Options::default()
        };
        let r = attribute.or(crate_wide).resolve();
        assert_eq!((r.cache_none, r.none_timeout), (true, None));
        // Neither set here: both from the crate.
        let r = Options::default().or(crate_wide).resolve();
        assert_eq!((r.cache_none, r.none_timeout), (true, Some(5)));
    }
}
