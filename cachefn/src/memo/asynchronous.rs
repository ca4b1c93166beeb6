//! The async side of memoized functions: what `#[quickcache]` on an
//! `async fn` expands to calls.

use std::future::Future;
use std::sync::Arc;

use super::{clear_all_io, clear_io, get_cached_io, set_cached_io, start, Memo, Site, Start};
use crate::flight::Shared;
use crate::flight_async::AsyncJoined;
use crate::io::Io;
use crate::key::KeyBuilder;
use crate::{Cache, Error};

/// The local hit of a memoized `async fn`, checked before its body's future
/// is even built (a hit then costs what a sync hit costs). `Err`: what the
/// check found out, for [`call_async`] to await the rest with.
#[inline]
pub fn hit_async<M: Memo>(
    site: &'static Site,
    kb: &mut KeyBuilder,
    refresh: bool,
) -> Result<M::Ret, AsyncCold> {
    // The thread-local `Rc` inside `Start` is dropped here: it must not
    // live across an `.await` (it would make the future `!Send`).
    match start::<M>(site, kb, refresh) {
        Start::Hit(v) => Ok(M::from_cached(v)),
        Start::Uncached => Err(AsyncCold(None)),
        Start::Cold(resolved, fp) => Err(AsyncCold(
            resolved.cache.as_ref().ok().map(|c| (c.clone(), fp)),
        )),
    }
}

/// A memoized `async fn` call that missed the local tier: the cache and the
/// key's fingerprint, or `None` when the call runs uncached (logged).
pub struct AsyncCold(Option<(Cache, u128)>);

/// The rest of a memoized `async fn` call after [`hit_async`]: `kb` holds
/// the key, `refresh` is the `skip_arg`, `body` the function's own future
/// (run at most once). The future is `Send` whenever `body` is.
pub async fn call_async<M, F>(
    site: &'static Site,
    kb: KeyBuilder,
    refresh: bool,
    cold: AsyncCold,
    body: F,
) -> M::Ret
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    let AsyncCold(Some((cache, fp))) = cold else {
        return body.await;
    };
    call_cold_async::<M, F>(site, &cache, &kb, fp, refresh, body).await
}

async fn call_cold_async<M, F>(
    site: &'static Site,
    cache: &Cache,
    kb: &KeyBuilder,
    fp: u128,
    refresh: bool,
    body: F,
) -> M::Ret
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    let s = site.settings();
    let text = match kb.text() {
        Ok(t) => t,
        Err(e) => {
            site.warn("no key", &e);
            return body.await;
        }
    };
    if !refresh {
        if let Some(v) = cache
            .shared_typed::<M::Cached>(Io::Async, &text, fp, s.local_timeout)
            .await
        {
            return M::from_cached(v);
        }
    }
    // Boxed: the miss path (single-flight, the body, the store) is a large
    // future, and a shared hit would otherwise carry and copy its space.
    Box::pin(compute::<M, F>(site, cache, &text, fp, refresh, body)).await
}

/// A miss (or a refresh): compute under single-flight, store, share.
async fn compute<M, F>(
    site: &'static Site,
    cache: &Cache,
    text: &str,
    fp: u128,
    refresh: bool,
    body: F,
) -> M::Ret
where
    M: Memo,
    F: Future<Output = M::Ret>,
{
    let s = site.settings();
    let store = |ret: M::Ret| async move {
        if let Some(v) = M::cacheable(&ret, s.cache_none) {
            let stored = cache
                .store_typed(Io::Async, text, fp, v, s.timeout, s.local_timeout)
                .await;
            if let Err(e) = stored {
                site.warn("could not store the result", &e);
            }
        }
        ret
    };
    if refresh {
        cache.count_miss();
        return store(body.await).await;
    }
    loop {
        match cache.async_flights().join(fp).await {
            AsyncJoined::Lead(leader) => {
                // Another leader may have stored the value since our miss.
                if let Some(v) = cache.local_typed::<M::Cached>(fp) {
                    leader.finish(|| Some(Arc::new(v.clone()) as Shared));
                    return M::from_cached(v);
                }
                cache.count_miss();
                // If this future is dropped while the body runs, `leader`
                // drops with it and a waiting task takes over.
                let ret = store(body.await).await;
                leader.finish(|| {
                    M::cacheable(&ret, s.cache_none).map(|v| Arc::new(v.clone()) as Shared)
                });
                return ret;
            }
            AsyncJoined::Value(v) => {
                if let Some(v) = v.downcast_ref::<M::Cached>() {
                    return M::from_cached(v.clone());
                }
            }
            AsyncJoined::Alone => {
                cache.count_miss();
                return store(body.await).await;
            }
        }
    }
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
