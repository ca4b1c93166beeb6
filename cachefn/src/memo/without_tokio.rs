//! Without the `tokio` feature, `#[quickcache]` on an `async fn` expands to
//! calls of these: they exist only to fail type-checking with a message
//! that says which feature to turn on. Only [`hit_async`], which every
//! async wrapper calls once, carries the bound: the helpers and the rest of
//! the wrapper type-check, so a crate gets that message once per function
//! rather than once per generated call.

use std::future::Future;

use super::{Memo, Site};
use crate::key::KeyBuilder;
use crate::Error;

/// Implemented by nothing: see the message.
#[diagnostic::on_unimplemented(
    message = "`#[quickcache]` on an `async fn` needs the `tokio` feature of cachefn",
    label = "this memoized function is async",
    note = "turn the feature on in Cargo.toml: cachefn = {{ version = \"0.1\", features = [\"tokio\"] }}"
)]
pub trait AsyncNeedsTheTokioFeature {}

/// See [`AsyncNeedsTheTokioFeature`].
pub struct AsyncCold;

/// See [`AsyncNeedsTheTokioFeature`].
pub fn hit_async<M: Memo>(
    _site: &'static impl AsyncNeedsTheTokioFeature,
    _kb: &mut KeyBuilder,
    _refresh: bool,
) -> Result<M::Ret, AsyncCold> {
    Err(AsyncCold)
}

/// See [`AsyncNeedsTheTokioFeature`].
pub async fn call_async<M: Memo, F: Future<Output = M::Ret>>(
    _site: &'static Site,
    _kb: KeyBuilder,
    _refresh: bool,
    _cold: AsyncCold,
    body: F,
) -> M::Ret {
    body.await
}

/// See [`AsyncNeedsTheTokioFeature`].
pub fn call_async_boxed<M: Memo, F: Future<Output = M::Ret>>(
    _site: &'static Site,
    _kb: KeyBuilder,
    _refresh: bool,
    _cold: AsyncCold,
    body: F,
) -> std::pin::Pin<Box<F>> {
    Box::pin(body)
}

/// See [`AsyncNeedsTheTokioFeature`].
pub async fn clear_async(_site: &'static Site, _kb: KeyBuilder) -> Result<(), Error> {
    Ok(())
}

/// See [`AsyncNeedsTheTokioFeature`].
pub async fn clear_all_async(_site: &'static Site) -> Result<(), Error> {
    Ok(())
}

/// See [`AsyncNeedsTheTokioFeature`].
pub async fn get_cached_async<M: Memo>(_site: &'static Site, _kb: KeyBuilder) -> Option<M::Cached> {
    None
}

/// See [`AsyncNeedsTheTokioFeature`].
pub async fn set_cached_async<M: Memo>(
    _site: &'static Site,
    _kb: KeyBuilder,
    _value: M::Cached,
) -> Result<(), Error> {
    Ok(())
}
