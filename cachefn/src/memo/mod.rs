//! What `#[quickcache]` expands to calls. Not a stable API: every item here
//! may change in any release; use the attribute.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cachefn_backends::sync::Mutex;
use cachefn_backends::LocalValue;
use serde::{de::DeserializeOwned, Serialize};

use crate::cache::{Flavor, Freshness, Meta, Plan, Timed};
use crate::io::{block_on, Io};
use crate::key::{escape_name, head_fingerprint, KeyBuilder};
use crate::log::RateLimited;
use crate::registry::{self, Options};
use crate::stats::SiteStats;
use crate::{Cache, Error, Key, Stats};
use hot::Hot;

#[cfg(feature = "tokio")]
mod asynchronous;
mod hot;
#[cfg(feature = "tokio")]
pub use asynchronous::*;
#[cfg(not(feature = "tokio"))]
mod without_tokio;
#[cfg(not(feature = "tokio"))]
pub use without_tokio::*;

pub use crate::registry::CrateDefaults;
pub use crate::registry::Options as SiteOptions;
pub use inventory;

/// How a memoized function is named inside its keys.
pub enum SiteName {
    /// A free function: the site's `module_path!()` (inside the helper
    /// module, so it ends with the function's name).
    Path,
    /// A method: the method's name, after its `Self` type's name.
    Method(&'static str),
    /// `name = "..."` (already checked to be key-safe by the macro).
    Custom(&'static str),
}

/// Everything the attribute knows about one memoized function, in a static.
pub struct Site {
    module_path: &'static str,
    name: SiteName,
    options: Options,
    settings: OnceLock<Settings>,
    self_type: OnceLock<&'static str>,
    /// Set when caching this site would risk wrong data (its key head is
    /// another function's, or a generic impl's method sees several `Self`
    /// types): calls then run uncached.
    disabled: AtomicBool,
    /// Why, for the error the helpers return.
    disabled_why: OnceLock<String>,
    slot: AtomicUsize,
    log: RateLimited,
}

/// Every site's key head (`name:vN`), claimed when its settings are first
/// resolved: two sites never share one, and an invalidation of a key is
/// counted for the function it belongs to ([`invalidated`]).
static HEADS: Mutex<BTreeMap<String, &'static Site>> = Mutex::new(BTreeMap::new());

/// The local copy of the key `text` (without the cache's prefix) was
/// dropped because the shared tier reported a change: count it in its
/// function's [`Stats::invalidations`](crate::Stats). A key of no memoized
/// function (a `get_or_set` key, say) counts only in its cache's.
pub(crate) fn invalidated(text: &str) {
    let Some((head, _)) = crate::key::split_head(text.as_bytes()) else {
        return;
    };
    let Ok(head) = std::str::from_utf8(head) else {
        return;
    };
    let site = HEADS.lock().get(head).copied();
    if let Some(site) = site {
        site.settings().stats.counters.invalidations.add_n(1);
    }
}

struct Settings {
    /// `name:vN`, the start of every key.
    head: Box<str>,
    /// Its fingerprint, computed once (see `key::fingerprint`).
    head_fp: u128,
    /// `name:`, the start of every key of every version, for `clear_all`.
    all_versions: Box<str>,
    timeout: Duration,
    local_timeout: Duration,
    cache: Option<&'static str>,
    cache_none: bool,
    /// How long a `None` lives, when shorter than `timeout`.
    none_ttl: Option<Duration>,
    /// `single_flight = "shared"`.
    shared_flight: bool,
    freshness: Freshness,
    /// Whether local hits are served from the hot entries (no freshness
    /// option is on).
    hot: bool,
    /// This function's counters in this process.
    stats: SiteStats,
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);

/// Longest function name inside keys (the rest of [`crate::MAX_KEY_LEN`] is
/// for the version and the arguments).
const MAX_NAME_LEN: usize = 100;

struct ResolvedCache {
    epoch: u64,
    cache: Result<Cache, Error>,
    /// This thread's hot entries of the function in `cache`.
    hot: RefCell<Hot>,
    /// Whether hits are served from `hot` (the function has no freshness
    /// option), and its counters: read here, a hit reads no settings.
    hot_on: bool,
    stats: &'static SiteStats,
    /// This thread's stripe of the counters (see `stats::stripe`).
    stripe: usize,
}

thread_local! {
    static RESOLVED: RefCell<Vec<Option<Rc<ResolvedCache>>>> = const { RefCell::new(Vec::new()) };
}

impl Site {
    /// A site for the static that the attribute emits.
    pub const fn new(module_path: &'static str, name: SiteName, options: Options) -> Site {
        Site {
            module_path,
            name,
            options,
            settings: OnceLock::new(),
            self_type: OnceLock::new(),
            disabled: AtomicBool::new(false),
            disabled_why: OnceLock::new(),
            slot: AtomicUsize::new(0),
            log: RateLimited::new(),
        }
    }

    #[inline]
    fn settings(&'static self) -> &'static Settings {
        self.settings.get_or_init(|| self.resolve_settings())
    }

    fn resolve_settings(&'static self) -> Settings {
        let o = self
            .options
            .or(registry::crate_defaults(self.module_path))
            .resolve();
        let name = match &self.name {
            SiteName::Path => escape_name(self.module_path),
            SiteName::Method(m) => {
                let ty = self.self_type.get().copied().unwrap_or(self.module_path);
                escape_name(&format!("{ty}::{m}"))
            }
            SiteName::Custom(n) => (*n).to_owned(),
        };
        // Leave room for arguments under MAX_KEY_LEN: a very long name
        // (deep modules, generic types) keeps its start and a hash.
        let name = crate::key::shorten(&name, MAX_NAME_LEN, b'.');
        let head = format!("{name}:v{}", o.version);
        self.claim_head(&head);
        crate::stats::on_invalidated(invalidated);
        let freshness = Freshness {
            stale_while_revalidate: Duration::from_secs(o.stale_while_revalidate),
            stale_if_error: Duration::from_secs(o.stale_if_error),
            early_refresh: o.early_refresh,
        };
        Settings {
            stats: SiteStats::new(&name),
            head_fp: head_fingerprint(head.as_bytes()),
            head: head.into(),
            all_versions: format!("{name}:v").into(),
            timeout: Duration::from_secs(o.timeout),
            local_timeout: Duration::from_secs(o.local_timeout),
            cache: o.cache,
            cache_none: o.cache_none,
            none_ttl: o.none_timeout.map(Duration::from_secs),
            shared_flight: o.single_flight_shared,
            hot: freshness.is_off(),
            freshness,
        }
    }

    /// The cache this site uses now, memoized per thread until the registry
    /// changes (no shared atomic is written on the hot path).
    #[inline(always)]
    fn resolved(&'static self) -> Rc<ResolvedCache> {
        let epoch = registry::epoch();
        let mut slot = self.slot.load(Ordering::Relaxed);
        if slot == 0 {
            slot = self.assign_slot();
        }
        let hit = RESOLVED.try_with(|r| {
            r.try_borrow().ok().and_then(|v| match v.get(slot) {
                Some(Some(res)) if res.epoch == epoch => Some(res.clone()),
                _ => None,
            })
        });
        match hit {
            Ok(Some(res)) => res,
            _ => self.resolve_slow(slot, epoch),
        }
    }

    /// The local hit of `alias` in this thread's hot entries of the site,
    /// counted: one thread-local access, and no reference count, settings
    /// or clock beyond the entry's own check. `true`: the value is in
    /// `out`; `false`: take [`check`]'s slow path (first call on this
    /// thread, registry changed, no entry).
    #[inline(always)]
    fn hot_hit<T: Clone + 'static>(
        &'static self,
        alias: u128,
        stream: &[u8],
        out: &mut MaybeUninit<T>,
    ) -> bool {
        let slot = self.slot.load(Ordering::Relaxed);
        let epoch = registry::epoch();
        RESOLVED
            .try_with(|r| {
                let Ok(v) = r.try_borrow() else {
                    return false;
                };
                let Some(Some(res)) = v.get(slot) else {
                    return false;
                };
                if res.epoch != epoch || !res.hot_on {
                    return false;
                }
                let (Ok(cache), Ok(mut hot)) = (&res.cache, res.hot.try_borrow_mut()) else {
                    return false;
                };
                let Some(local) = cache.inner.local.as_deref() else {
                    return false;
                };
                let found = hot.get_into::<T>(alias, stream, local, out);
                if found {
                    cache.count_local_hit_at(res.stats, res.stripe);
                }
                found
            })
            .unwrap_or(false)
    }

    fn assign_slot(&self) -> usize {
        let fresh = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
        match self
            .slot
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(existing) => existing,
        }
    }

    #[cold]
    fn resolve_slow(&'static self, slot: usize, epoch: u64) -> Rc<ResolvedCache> {
        let cache = match self.settings().cache {
            None => Ok(registry::default_cache()),
            Some(name) => registry::cache(name),
        };
        let s = self.settings();
        let res = Rc::new(ResolvedCache {
            epoch,
            cache,
            hot: RefCell::new(Hot::new()),
            hot_on: s.hot,
            stats: &s.stats,
            stripe: crate::stats::stripe(),
        });
        let _ = RESOLVED.try_with(|r| {
            if let Ok(mut v) = r.try_borrow_mut() {
                if v.len() <= slot {
                    v.resize(slot + 1, None);
                }
                v[slot] = Some(res.clone());
            }
        });
        res
    }

    fn cache(&'static self) -> Result<Cache, Error> {
        if self.is_disabled() {
            let why = self
                .disabled_why
                .get()
                .map_or("see the error logged for it", |w| w);
            return Err(Error::Disabled(format!(
                "`{}`: {why}",
                self.settings().head
            )));
        }
        self.resolved().cache.clone()
    }

    fn warn(&'static self, what: &str, err: &Error) {
        if self.log.allow() {
            tracing::error!(target: "cachefn", function = %self.settings().head, error = %err,
                "{what}; the function runs uncached");
        }
    }

    /// Record the `Self` type of a method's site (its name is part of keys).
    /// A method of a generic impl has one site for every `Self` type; when a
    /// second type shows up, the site stops caching rather than let the
    /// types share entries.
    #[inline]
    pub fn with_self_type(&'static self, ty: fn() -> &'static str) -> &'static Site {
        let name = ty();
        match self.self_type.get() {
            Some(first) if std::ptr::eq(*first, name) || *first == name => {}
            Some(first) => self.disable(&format!(
                "a method of a generic impl is memoized for both `{first}` and `{name}`, which would share cache entries; give each type its own function, or memoize a free function that takes the type's data"
            )),
            None => {
                if self.self_type.set(name).is_err() {
                    return self.with_self_type(ty);
                }
            }
        }
        self
    }

    /// Make sure no other site has this key head; disable this one if so.
    fn claim_head(&'static self, head: &str) {
        let mut heads = HEADS.lock();
        match heads.get(head) {
            Some(&other) if !std::ptr::eq(other, self) => self.disable(&format!(
                "another memoized function already uses the key head `{head}` (two functions with one name in one module, e.g. inside different function bodies, or the same `name`); give one of them `name = \"...\"` or another `version`"
            )),
            Some(_) => {}
            None => {
                heads.insert(head.to_owned(), self);
            }
        }
    }

    fn disable(&self, why: &str) {
        let _ = self.disabled_why.set(why.to_owned());
        if !self.disabled.swap(true, Ordering::Relaxed) {
            tracing::error!(target: "cachefn", "{why}; the function runs uncached");
        }
    }

    #[inline]
    fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    /// Where and for how long this site caches the value of one key.
    #[inline]
    fn plan<'a>(&'static self, text: &'a str, fp: u128) -> Plan<'a> {
        let s = self.settings();
        Plan {
            text,
            fp,
            ttl: s.timeout,
            local_ttl: s.local_timeout,
            cache_none: s.cache_none,
            none_ttl: s.none_ttl,
            freshness: s.freshness,
            site: Some(&s.stats),
            early_drawn: false,
            shared_flight: s.shared_flight,
        }
    }

    /// A key builder that has written this site's `name:vN`.
    #[inline(always)]
    pub fn key_builder(&'static self) -> KeyBuilder {
        let s = self.settings();
        KeyBuilder::with_head(&s.head, s.head_fp)
    }
}

/// A value a memoized function can cache.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be cached by #[quickcache]",
    label = "this type is returned by a memoized function",
    note = "a cached value must be Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static: derive Clone, Serialize and Deserialize, and return owned data (String, not &str)"
)]
pub trait Value: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Clone + Serialize + DeserializeOwned + Send + Sync + 'static> Value for T {}

/// Compile-time check, spanned at the return type by the macro.
pub const fn assert_value<T: Value>() {}

/// How a return value maps to the value kept in the cache.
#[diagnostic::on_unimplemented(
    message = "`#[quickcache]` cannot cache the return type `{Self}`",
    note = "return a value, a std `Result<T, E>` (only `Ok` is cached) or an `Option<T>`"
)]
pub trait Memo {
    /// The function's return type.
    type Ret;
    /// What is stored: `T` for `T`, `Result<T, E>`; `Option<T>` for `Option<T>`.
    type Cached: Value;
    /// A `Result`: an `Err` may be stood in for by a stale `Ok`.
    const FALLIBLE: bool = false;
    /// The part of `ret` to store, if it is cached at all.
    fn cacheable(ret: &Self::Ret, cache_none: bool) -> Option<&Self::Cached>;
    /// A `None` of an `Option` function, which lives `none_timeout`.
    #[inline]
    fn is_none(_value: &Self::Cached) -> bool {
        false
    }
    /// A return value from a cached value.
    fn from_cached(value: Self::Cached) -> Self::Ret;
}

/// Every value is cached.
pub struct Plain<R>(PhantomData<R>);
/// Only `Ok` values are cached.
pub struct ResultOf<R>(PhantomData<R>);
/// `Some` always, `None` unless `cache_none = false`.
pub struct OptionOf<R>(PhantomData<R>);

impl<R: Value> Memo for Plain<R> {
    type Ret = R;
    type Cached = R;
    #[inline]
    fn cacheable(ret: &R, _: bool) -> Option<&R> {
        Some(ret)
    }
    #[inline]
    fn from_cached(value: R) -> R {
        value
    }
}

impl<T: Value, E> Memo for ResultOf<Result<T, E>> {
    type Ret = Result<T, E>;
    type Cached = T;
    const FALLIBLE: bool = true;
    #[inline]
    fn cacheable(ret: &Result<T, E>, _: bool) -> Option<&T> {
        ret.as_ref().ok()
    }
    #[inline]
    fn from_cached(value: T) -> Result<T, E> {
        Ok(value)
    }
}

impl<T> Memo for OptionOf<Option<T>>
where
    Option<T>: Value,
{
    type Ret = Option<T>;
    type Cached = Option<T>;
    #[inline]
    fn cacheable(ret: &Option<T>, cache_none: bool) -> Option<&Option<T>> {
        (ret.is_some() || cache_none).then_some(ret)
    }
    #[inline]
    fn is_none(value: &Option<T>) -> bool {
        value.is_none()
    }
    #[inline]
    fn from_cached(value: Option<T>) -> Option<T> {
        value
    }
}

/// A memoized function's value is kept typed in the local tier: a hit (and
/// a waiter of the same function) clones it, decoding nothing.
impl<M: Memo> Flavor for M {
    type Ret = M::Ret;
    type Value = M::Cached;
    type Kept = Timed<M::Cached>;
    const KEEPS_BYTES: bool = false;
    const FALLIBLE: bool = M::FALLIBLE;
    #[inline]
    fn cacheable(ret: &M::Ret, cache_none: bool) -> Option<&M::Cached> {
        M::cacheable(ret, cache_none)
    }
    #[inline]
    fn is_none(value: &M::Cached) -> bool {
        M::is_none(value)
    }
    #[inline]
    fn from_value(value: M::Cached) -> M::Ret {
        M::from_cached(value)
    }
    #[inline]
    fn keep(value: &M::Cached, _: Option<&[u8]>, meta: Meta) -> Option<Timed<M::Cached>> {
        Some(Timed {
            value: value.clone(),
            meta,
        })
    }
    #[inline]
    fn typed(kept: &dyn LocalValue) -> Option<(M::Cached, Meta)> {
        kept.as_any()
            .downcast_ref::<Timed<M::Cached>>()
            .map(|t| (t.value.clone(), t.meta))
    }
    #[inline]
    fn typed_value(kept: &dyn LocalValue) -> Option<M::Cached> {
        kept.as_any()
            .downcast_ref::<Timed<M::Cached>>()
            .map(|t| t.value.clone())
    }
}

/// What the hit check of a memoized call found out, for the rest of the
/// call ([`call`]) when it was not a local hit.
pub struct Cold {
    /// The resolved cache (always `Ok`); `None`: the call runs uncached
    /// (logged). The thread-local `Rc` keeps the sync path free of atomic
    /// reference counts; the async path clones the `Cache` out of it, as an
    /// `Rc` must not live across an `.await`.
    resolved: Option<Rc<ResolvedCache>>,
    /// The arguments' raw fingerprint, under which the function's hot
    /// entries are looked up (`None`: the arguments have no raw stream, or
    /// the function has freshness options).
    alias: Option<u128>,
}

/// The local hit of a memoized call: the hash of the arguments' raw
/// streams, which `kb` was given with [`KeyBuilder::hashing`], looked up
/// in this thread's hot entries of the function (see [`hot`]). No key text
/// is written. Shared by the sync and the async call, and one function for
/// every value type (not inlined into each wrapper: the wrapper writes the
/// raw stream and calls it). `true`: the value is in `out`; `false`: go on
/// with [`check`].
///
/// `alias` is `kb.raw_fingerprint()`, computed by the caller: inlined into
/// the wrapper that wrote the raw stream, a short stream's fingerprint is
/// made in registers (see `RawSink`) and passed here in two. And the clone
/// is written into the caller's `out`: returned in a `Result` with [`Cold`]
/// (whose `Option<u128>` made the tag a 16-byte word), the caller read the
/// tag and the value back with wider loads than the stores that wrote
/// them, and each such load waited for those stores to reach the cache (a
/// store-forwarding stall).
///
/// `stream` is `kb.raw_stream()`: empty for a short stream, whose alias is
/// injective, else the whole stream, which a hot entry must equal.
#[inline(never)]
fn check_hot<M: Memo>(
    site: &'static Site,
    alias: Option<u128>,
    stream: &[u8],
    refresh: bool,
    out: &mut MaybeUninit<M::Cached>,
) -> bool {
    match alias {
        Some(alias) if !refresh && !site.is_disabled() => site.hot_hit(alias, stream, out),
        _ => false,
    }
}

/// The rest of the local hit check after [`check_hot`]: `Err` says what
/// the call goes on with.
#[inline(never)]
fn check<M: Memo>(
    site: &'static Site,
    alias: Option<u128>,
    stream: &[u8],
    refresh: bool,
) -> Result<M::Cached, Cold> {
    if site.is_disabled() {
        return Err(Cold {
            resolved: None,
            alias: None,
        });
    }
    check_slow::<M>(site, alias, stream, refresh)
}

/// [`check`] when the hot entries did not serve: resolve the cache (on a
/// thread's first call, or after the registry changed) and look again.
#[inline(never)]
fn check_slow<M: Memo>(
    site: &'static Site,
    alias: Option<u128>,
    stream: &[u8],
    refresh: bool,
) -> Result<M::Cached, Cold> {
    let resolved = site.resolved();
    let cache = match &resolved.cache {
        Ok(cache) => cache,
        Err(e) => {
            site.warn("the function's cache is not registered", e);
            return Err(Cold {
                resolved: None,
                alias: None,
            });
        }
    };
    let s = site.settings();
    let alias = alias.filter(|_| s.hot);
    if let (false, Some(alias), Some(local)) = (refresh, alias, cache.inner.local.as_deref()) {
        let found = match resolved.hot.try_borrow_mut() {
            Ok(mut hot) => hot.get::<M::Cached>(alias, stream, local),
            Err(_) => None,
        };
        if let Some(v) = found {
            cache.count_local_hit(&s.stats);
            return Ok(v);
        }
    }
    Err(Cold {
        resolved: Some(resolved),
        alias,
    })
}

/// The key text's step of a call that [`check`] did not serve: `kb` got
/// its text parts before; the key's fingerprint is made and (unless
/// `refresh`) the local tier read by it, and a value found there becomes a
/// hot entry of this thread under the alias. `Err(None)`: no key (logged),
/// the call runs uncached; `Err(Some)`: the fingerprint and whether XFetch
/// drew an early refresh, for read-through.
#[inline]
fn keyed<M: Memo>(
    site: &'static Site,
    cache: &Cache,
    kb: &mut KeyBuilder,
    alias: Option<u128>,
    refresh: bool,
) -> Result<M::Cached, Option<(u128, bool)>> {
    let fp = match kb.finish() {
        Ok(fp) => fp,
        Err(e) => {
            site.warn("no key", &e);
            return Err(None);
        }
    };
    if refresh {
        return Err(Some((fp, false)));
    }
    let s = site.settings();
    let v = cache
        .local_fresh::<M, _>(fp, &*kb, &s.freshness, &s.stats)
        .map_err(|drawn| Some((fp, drawn)))?;
    if let Some(alias) = alias {
        remember_hot::<M::Cached>(site, cache, alias, kb, fp);
    }
    Ok(v)
}

/// Make `kb`'s local entry (under `fp`) a hot entry of this thread under
/// `alias` and its raw stream.
#[cold]
fn remember_hot<T: 'static>(
    site: &'static Site,
    cache: &Cache,
    alias: u128,
    kb: &KeyBuilder,
    fp: u128,
) {
    let resolved = site.resolved();
    let (Ok(current), Some(local)) = (&resolved.cache, cache.inner.local.as_deref()) else {
        return;
    };
    if !Arc::ptr_eq(&current.inner, &cache.inner) {
        return;
    }
    if let Ok(mut hot) = resolved.hot.try_borrow_mut() {
        hot.insert::<T, _>(alias, kb.raw_stream(), fp, kb, local);
    };
}

/// `f()`, never inlined: the part of an `async fn`'s wrapper that only a
/// miss runs (writing the key text, building the boxed rest of the call),
/// out of the future's `poll`, which then stays small enough to be inlined
/// where the call is awaited.
#[inline(never)]
pub fn outlined<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The local hit of a memoized sync call (see [`KeyBuilder::hashing`]);
/// `Err`: write the key's text parts into `kb` and go on with [`call`].
///
/// Inlined into the wrapper, always: called, it returned its `Result`
/// through memory, and the wrapper read the tag back with a wider load
/// than the two stores that wrote it (a store-forwarding stall); and a
/// short stream's fingerprint is made in the registers the wrapper wrote it
/// to only when this is inlined there.
#[inline(always)]
pub fn hit<M: Memo>(
    site: &'static Site,
    kb: &mut KeyBuilder,
    refresh: bool,
) -> Result<M::Ret, Cold> {
    let alias = kb.raw_fingerprint();
    let stream = kb.raw_stream();
    // Written out here and in `hit_async` rather than shared: a helper that
    // returns the value in an `Option` makes the caller read it back with
    // wider loads than the stores that wrote it (a store-forwarding stall).
    let mut out = MaybeUninit::uninit();
    if check_hot::<M>(site, alias, stream, refresh, &mut out) {
        // SAFETY: `check_hot` wrote `out`.
        return Ok(M::from_cached(unsafe { out.assume_init() }));
    }
    check::<M>(site, alias, stream, refresh).map(M::from_cached)
}

/// The rest of a memoized call after [`hit`]: `kb` holds the key's text,
/// `refresh` is the `skip_arg`.
#[inline]
pub fn call<M: Memo>(
    site: &'static Site,
    kb: &mut KeyBuilder,
    refresh: bool,
    cold: Cold,
    body: impl FnOnce() -> M::Ret,
) -> M::Ret {
    let Cold { resolved, alias } = cold;
    let Some(Ok(cache)) = resolved.as_ref().map(|r| &r.cache) else {
        return body();
    };
    match keyed::<M>(site, cache, kb, alias, refresh) {
        Ok(v) => M::from_cached(v),
        Err(None) => body(),
        Err(Some(drawn)) => call_cold::<M>(site, cache, kb, drawn, refresh, body),
    }
}

#[inline(never)]
fn call_cold<M: Memo>(
    site: &'static Site,
    cache: &Cache,
    kb: &KeyBuilder,
    (fp, early): (u128, bool),
    refresh: bool,
    body: impl FnOnce() -> M::Ret,
) -> M::Ret {
    let text = match kb.text() {
        Ok(t) => t,
        Err(e) => {
            site.warn("no key", &e);
            return body();
        }
    };
    let mut plan = site.plan(&text, fp);
    plan.early_drawn = early;
    // The body behind a `dyn Future`: the read-through path (a few hundred
    // functions' worth of code) is compiled once per value type, not once
    // per memoized function, at the cost of one indirect call on a miss.
    let body = std::pin::pin!(async { body() });
    let body: Pin<&mut dyn Future<Output = M::Ret>> = body;
    block_on(cache.read_through::<M, _>(Io::Blocking, &plan, refresh, body))
}

/// The cache and the finished key of a helper (its stored text is all a
/// helper needs).
fn finished(site: &'static Site, kb: &mut KeyBuilder) -> Result<(Cache, Key), Error> {
    let cache = site.cache()?;
    let fp = kb.finish()?;
    Ok((cache, Key::from_parts(None, &kb.text()?, fp)))
}

// The helpers, written once for the sync and the async API (see `io`).

async fn clear_io(io: Io, site: &'static Site, kb: &mut KeyBuilder) -> Result<(), Error> {
    let (cache, key) = finished(site, kb)?;
    cache
        .remove(io, key.stored(), key.fingerprint())
        .await
        .map(drop)
}

async fn clear_all_io(io: Io, site: &'static Site) -> Result<(), Error> {
    let cache = site.cache()?;
    cache.remove_prefix(io, &site.settings().all_versions).await
}

async fn get_cached_io<M: Memo>(
    io: Io,
    site: &'static Site,
    kb: &mut KeyBuilder,
) -> Option<M::Cached> {
    let (cache, key) = finished(site, kb).ok()?;
    if let Some(v) = cache.local_value::<M>(key.fingerprint(), key.stored()) {
        return Some(v);
    }
    let plan = site.plan(key.stored(), key.fingerprint());
    cache.shared_value::<M>(io, &plan).await.map(|(v, _, _)| v)
}

async fn set_cached_io<M: Memo>(
    io: Io,
    site: &'static Site,
    kb: &mut KeyBuilder,
    value: M::Cached,
) -> Result<(), Error> {
    let (cache, key) = finished(site, kb)?;
    let plan = site.plan(key.stored(), key.fingerprint());
    cache.store_value::<M>(io, &plan, &value).await.0
}

/// `f::clear(args)`.
pub fn clear(site: &'static Site, kb: &mut KeyBuilder) -> Result<(), Error> {
    block_on(clear_io(Io::Blocking, site, kb))
}

/// `f::clear_all()`: every key of every version of the function.
pub fn clear_all(site: &'static Site) -> Result<(), Error> {
    block_on(clear_all_io(Io::Blocking, site))
}

/// `f::key(args)`.
pub fn key(site: &'static Site, kb: KeyBuilder) -> Key {
    match kb.into_key() {
        Ok(k) => k,
        Err(e) => {
            site.warn("no key", &e);
            // A key that matches no stored entry: '!' never appears in a
            // key built from arguments, and the hash form is not valid.
            Key::from_parts(None, &format!("{}:!invalid", site.settings().head), 0)
        }
    }
}

/// `f::get_cached(args)`.
pub fn get_cached<M: Memo>(site: &'static Site, kb: &mut KeyBuilder) -> Option<M::Cached> {
    block_on(get_cached_io::<M>(Io::Blocking, site, kb))
}

/// `f::set_cached(args, value)`.
pub fn set_cached<M: Memo>(
    site: &'static Site,
    kb: &mut KeyBuilder,
    value: M::Cached,
) -> Result<(), Error> {
    block_on(set_cached_io::<M>(Io::Blocking, site, kb, value))
}

/// `f::stats()`: the function's counters in this process.
pub fn stats(site: &'static Site) -> Stats {
    site.settings().stats.counters.snapshot()
}

/// `Self`'s type name, for methods' keys.
pub fn type_name_of<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}
