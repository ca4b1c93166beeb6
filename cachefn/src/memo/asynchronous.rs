//! The async side of memoized functions: what `#[quickcache]` on an
//! `async fn` expands to calls.

use std::future::Future;
use std::pin::Pin;

use super::{
    check, check_hot, clear_all_io, clear_io, get_cached_io, keyed, set_cached_io, Memo, Site,
};
use crate::io::Io;
use crate::key::KeyBuilder;
use crate::{Cache, Error};

/// The local hit of a memoized `async fn` (see
/// [`KeyBuilder::hashing`]), checked before its body's future is even
/// built (a hit then costs what a sync hit costs). `Err`: what the check
/// found out: write the key's text parts into `kb` and await the rest with
/// [`call_async`]. Inlined always, as [`hit`](super::hit) is.
#[inline(always)]
pub fn hit_async<M: Memo>(
    site: &'static Site,
    kb: &mut KeyBuilder,
    refresh: bool,
) -> Result<M::Ret, AsyncCold> {
    // The thread-local `Rc` inside `Cold` is dropped here: it must not
    // live across an `.await` (it would make the future `!Send`).
    let alias = kb.raw_fingerprint();
    let stream = kb.raw_stream();
    let mut out = std::mem::MaybeUninit::uninit();
    if check_hot::<M>(site, alias, stream, refresh, &mut out) {
        // SAFETY: `check_hot` wrote `out`.
        return Ok(M::from_cached(unsafe { out.assume_init() }));
    }
    check::<M>(site, alias, stream, refresh)
        .map(M::from_cached)
        .map_err(|cold| {
            AsyncCold(
                cold.resolved
                    .and_then(|r| r.cache.as_ref().ok().cloned())
                    .map(|c| (c, cold.alias)),
            )
        })
}

/// A memoized `async fn` call that missed the local hit check: the cache
/// and the arguments' alias, or `None` when the call runs uncached (logged).
pub struct AsyncCold(Option<(Cache, Option<u128>)>);

/// The rest of a memoized `async fn` call after [`hit_async`]: `kb` holds
/// the key's text, `refresh` is the `skip_arg`, `body` the function's own
/// future (run at most once). The future is `Send` whenever `body` is.
pub async fn call_async<M, F>(
    site: &'static Site,
    mut kb: KeyBuilder,
    refresh: bool,
    cold: AsyncCold,
    body: F,
) -> M::Ret
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    let AsyncCold(Some((cache, alias))) = cold else {
        return body.await;
    };
    match keyed::<M>(site, &cache, &mut kb, alias, refresh) {
        Ok(v) => M::from_cached(v),
        Err(None) => body.await,
        Err(Some(drawn)) => call_cold_async::<M, F>(site, &cache, &kb, drawn, refresh, body).await,
    }
}

/// [`call_async`], boxed: what an `async fn`'s wrapper awaits after a
/// miss of [`hit_async`], so that its own future (which a hit builds and
/// drops) holds a pointer, not this one's state (the key builder, the
/// body's future, the read-through's). A miss pays one allocation.
#[inline]
pub fn call_async_boxed<M, F>(
    site: &'static Site,
    kb: KeyBuilder,
    refresh: bool,
    cold: AsyncCold,
    body: F,
) -> Pin<Box<impl Future<Output = M::Ret>>>
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    Box::pin(call_async::<M, F>(site, kb, refresh, cold, body))
}

async fn call_cold_async<M, F>(
    site: &'static Site,
    cache: &Cache,
    kb: &KeyBuilder,
    (fp, early): (u128, bool),
    refresh: bool,
    body: F,
) -> M::Ret
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    let text = match kb.text() {
        Ok(t) => t,
        Err(e) => {
            site.warn("no key", &e);
            return body.await;
        }
    };
    let mut plan = site.plan(&text, fp);
    plan.early_drawn = early;
    cache
        .read_through::<M, F>(Io::Async, &plan, refresh, body)
        .await
}

/// `f::clear(args).await`.
pub async fn clear_async(site: &'static Site, mut kb: KeyBuilder) -> Result<(), Error> {
    clear_io(Io::Async, site, &mut kb).await
}

/// `f::clear_all().await`.
pub async fn clear_all_async(site: &'static Site) -> Result<(), Error> {
    clear_all_io(Io::Async, site).await
}

/// `f::get_cached(args).await`.
pub async fn get_cached_async<M: Memo>(
    site: &'static Site,
    mut kb: KeyBuilder,
) -> Option<M::Cached> {
    get_cached_io::<M>(Io::Async, site, &mut kb).await
}

/// `f::set_cached(args, value).await`.
pub async fn set_cached_async<M: Memo>(
    site: &'static Site,
    mut kb: KeyBuilder,
    value: M::Cached,
) -> Result<(), Error> {
    set_cached_io::<M>(Io::Async, site, &mut kb, value).await
}
